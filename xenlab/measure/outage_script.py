"""Inject network outages of known length on the host it runs on, and say exactly when.

Stdlib only (libnftables through ctypes), so the harness ships this file's source to the
observer host and runs it there as root: echo replies from TARGET are dropped in an
nftables input chain while TARGET is in a set, and let through again when it is removed.
(Dropping the requests in the output chain instead makes sendmsg fail with EPERM, and ping
then backs off: the outage it measures would be ping's own.) Each toggle is one libnftables
call; its midpoint is the edge, half its duration the uncertainty.

    python3 outage_script.py TARGET GAP_S DURATION_S [DURATION_S ...]
"""

import ctypes
import json
import sys
import time

TABLE = "xenlab_outage"


def main(argv: list) -> int:
    target, gap, durations = argv[1], float(argv[2]), [float(d) for d in argv[3:]]
    lib = ctypes.CDLL("libnftables.so.1")
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    ctx = lib.nft_ctx_new(0)
    lib.nft_ctx_buffer_error(ctx)

    def nft(command: str) -> None:
        if lib.nft_run_cmd_from_buffer(ctx, command.encode()) != 0:
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode().strip()
            raise RuntimeError(f"nft {command!r}: {error}")

    nft(f"add table inet {TABLE}")
    nft(f"delete table inet {TABLE}")  # a run killed earlier may have left one
    nft(f"add table inet {TABLE}")
    outages = []
    try:
        nft(f"add chain inet {TABLE} in {{ type filter hook input priority 0; }}")
        nft(f"add set inet {TABLE} blocked {{ type ipv4_addr; }}")
        nft(f"add rule inet {TABLE} in ip saddr @blocked icmp type echo-reply drop")
        element = f"inet {TABLE} blocked {{ {target} }}"
        time.sleep(gap)
        for duration in durations:
            t0 = time.time()
            nft(f"add element {element}")
            t1 = time.time()
            until = t1 + duration - (t1 - t0) / 2
            while True:  # sleep most of it, then spin for the last millisecond
                left = until - time.time()
                if left <= 0:
                    break
                time.sleep(left - 0.001 if left > 0.002 else 0)
            t2 = time.time()
            nft(f"delete element {element}")
            t3 = time.time()
            outages.append({"requested_s": duration, "start": (t0 + t1) / 2,
                            "end": (t2 + t3) / 2, "uncertainty_s": ((t1 - t0) + (t3 - t2)) / 2})
            time.sleep(gap)
    finally:
        nft(f"delete table inet {TABLE}")
    print(json.dumps({"target": target, "outages": outages}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
