"""Hold one TCP connection to the guest's echo service open across a migration.

Stdlib only, shipped to the observer host as source:

    python3 stream_script.py ADDRESS PORT INTERVAL_S

Sends a numbered line every INTERVAL_S and reads the echoes; prints "connected" once up.
On SIGINT or SIGTERM it stops sending, waits up to 3 s for the echoes still on their way,
and prints one JSON line: lines sent and echoed, whether the echoes came
back complete and in order, whether the connection was reset or closed, and the longest
stall between two echoes.
"""

import json
import select
import signal
import socket
import sys
import time


def main(argv: list) -> int:
    address, port, interval = argv[1], int(argv[2]), float(argv[3])
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    sock = socket.create_connection((address, port), timeout=10)
    sock.setblocking(False)
    sys.stdout.write("connected\n")
    sys.stdout.flush()
    sent = echoed = 0
    expected = 1
    in_order = True
    error = ""
    buffer = b""
    last_echo = first = time.monotonic()
    stall = 0.0
    stall_at = 0.0
    next_send = first
    while not stop and not error:
        now = time.monotonic()
        if now >= next_send:
            sent += 1
            try:
                sock.sendall(f"{sent}\n".encode())
            except BlockingIOError:
                sent -= 1  # the send buffer is full: the line goes next time
            except OSError as exc:
                error = f"send: {exc}"
                break
            next_send += interval
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        except InterruptedError:
            continue
        if not ready:
            continue
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as exc:
            error = f"recv: {exc}"
            break
        if not data:
            error = "closed by the guest"
            break
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        got = time.monotonic()
        for line in lines:
            echoed += 1
            if line.strip() != str(expected).encode():
                in_order = False
            expected += 1
        if lines:
            if got - last_echo > stall:
                stall, stall_at = got - last_echo, last_echo
            last_echo = got
    # drain: every line sent before the stop gets up to 3 s to come back
    deadline = time.monotonic() + 3.0
    while not error and echoed < sent and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            continue
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as exc:
            error = f"recv: {exc}"
            break
        if not data:
            error = "closed by the guest"
            break
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            echoed += 1
            if line.strip() != str(expected).encode():
                in_order = False
            expected += 1
    sock.close()
    print(json.dumps({"sent": sent, "echoed": echoed, "in_order": in_order, "error": error,
                      "longest_stall_ms": stall * 1000.0,
                      "stall_start": time.time() - (time.monotonic() - stall_at) if stall else None,
                      "duration_s": time.monotonic() - first}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
