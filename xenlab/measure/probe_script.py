"""A 1 kHz ICMP echo prober that keeps its schedule through an outage.

iputils ping sleeps 10 ms in recv while probes are unanswered (its MININTERVAL), so during
an outage its rate falls to ~100 Hz and the outage it reports grows by up to 10 ms. This
prober sends probe n at start + n * interval whatever happens, stamps replies with the kernel's
arrival time (SO_TIMESTAMPNS), and prints them in ping's own `-D` format (plus the send
time), so one parser reads both:

    [RECV_TIME] 64 bytes from ADDR: icmp_seq=N ttl=T time=RTT ms sent=SEND_TIME

Stdlib only (a raw ICMP socket, root), shipped to the observer host as source:

    python3 probe_script.py TARGET INTERVAL_S [DURATION_S]

SIGINT or SIGTERM (or the duration) ends it; it then prints ping's summary line.
"""

import os
import select
import signal
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main(argv: list) -> int:
    target, interval = argv[1], float(argv[2])
    duration = float(argv[3]) if len(argv) > 3 else 0.0
    address = socket.gethostbyname(target)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    # the kernel stamps each reply when it arrives: the times printed do not depend on when
    # this process got to read them (a busy machine delays that by milliseconds)
    so_timestampns = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on Linux
    sock.setsockopt(socket.SOL_SOCKET, so_timestampns, 1)
    ident = os.getpid() & 0xFFFF
    payload = b"xenlab-probe".ljust(56, b".")
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    out = sys.stdout
    out.write(f"PING {target} ({address}) 56(84) bytes of data.\n")
    out.flush()
    mono0, wall0 = time.monotonic(), time.time()
    sent_at = {}
    transmitted = received = 0
    seq = 0
    next_send = mono0
    last_flush = mono0
    pending = []
    while not stop:
        now = time.monotonic()
        if duration and now - mono0 >= duration:
            break
        if now >= next_send:
            seq += 1
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident,
                                 seq & 0xFFFF) + payload
            try:
                sock.sendto(packet, (address, 0))
            except OSError:
                pass  # a send error is a lost probe, as on the wire
            sent_at[seq & 0xFFFF] = (seq, wall0 + (now - mono0))
            transmitted += 1
            next_send = mono0 + seq * interval
            if next_send < now:  # fell behind (a stall of this process): never burst
                next_send = now + interval
            continue
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - now))
        except InterruptedError:
            continue
        if not ready:
            continue
        while True:
            try:
                data, ancillary, _flags, _addr = sock.recvmsg(2048, 256)
            except (BlockingIOError, InterruptedError):
                break
            got = time.monotonic()
            arrived = wall0 + (got - mono0)
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == so_timestampns:
                    sec, nsec = struct.unpack("qq", value[:16])
                    arrived = sec + nsec / 1e9
            ihl = (data[0] & 0x0F) * 4
            kind, _code, _sum, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind != 0 or rid != ident or rseq not in sent_at:
                continue
            _number, when = sent_at.pop(rseq)
            received += 1
            pending.append(f"[{arrived:.6f}] {len(data) - ihl} bytes from "
                           f"{address}: icmp_seq={rseq} ttl={data[8]} "
                           f"time={(arrived - when) * 1000:.3f} ms sent={when:.6f}\n")
        if pending and got - last_flush >= 0.02:  # a write every 20 ms, not every reply
            out.write("".join(pending))
            out.flush()
            pending.clear()
            last_flush = got
    out.write("".join(pending))
    elapsed = int((time.monotonic() - mono0) * 1000)
    loss = 100.0 * (transmitted - received) / transmitted if transmitted else 0.0
    out.write(f"\n--- {target} ping statistics ---\n{transmitted} packets transmitted, "
              f"{received} received, {loss:g}% packet loss, time {elapsed}ms\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
