"""Hold one TCP connection to the guest's echo service open across a migration.

Stdlib only, shipped to the observer host as source:

    python3 stream_script.py ADDRESS PORT INTERVAL_S

Sends a numbered line every INTERVAL_S and reads the echoes; prints "connected" once up.
On SIGINT or SIGTERM it stops sending, waits up to 20 s for the echoes still on their way
(TCP's retransmission back-off after a long pause delays them by seconds),
and prints one JSON line: lines sent and echoed, whether the echoes came
back complete and in order, whether the connection was reset or closed, and the longest
stall between two echoes (up to the first echo after it, drained ones included; open when
lines never came back).
"""

import json
import select
import signal
import socket
import sys
import time


class Echoes:
    """The lines coming back: counted, and checked to come in the order they were sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.echoed = 0
        self.expected = 1
        self.in_order = True
        self.buffer = b""

    def receive(self, wait: float) -> tuple[int, str]:
        """Read what arrives within `wait` s: (lines echoed, error or '')."""
        try:
            ready, _, _ = select.select([self.sock], [], [], wait)
        except InterruptedError:
            return 0, ""
        if not ready:
            return 0, ""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return 0, ""
        except OSError as exc:
            return 0, f"recv: {exc}"
        if not data:
            return 0, "closed by the guest"
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        for line in lines:
            self.echoed += 1
            if line.strip() != str(self.expected).encode():
                self.in_order = False
            self.expected += 1
        return len(lines), ""


def main(argv: list) -> int:
    address, port, interval = argv[1], int(argv[2]), float(argv[3])
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    sock = socket.create_connection((address, port), timeout=10)
    sock.setblocking(False)
    sys.stdout.write("connected\n")
    sys.stdout.flush()
    sent = 0
    error = ""
    echoes = Echoes(sock)

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
        got_lines, error = echoes.receive(max(0.0, next_send - time.monotonic()))
        got = time.monotonic()
        if got_lines:
            if got - last_echo > stall:
                stall, stall_at = got - last_echo, last_echo
            last_echo = got
    # drain: every line sent before the stop gets up to 20 s to come back (after a guest
    # paused for seconds, TCP retransmits with back-off); it ends as soon as all are back
    # Echoes that come back while draining count, and the stall they end counts too: the
    # stall of an outage runs up to the first echo after it, stop or no stop.
    deadline = time.monotonic() + 20.0
    while not error and echoes.echoed < sent and time.monotonic() < deadline:
        got_lines, error = echoes.receive(0.05)
        got = time.monotonic()
        if got_lines:
            if got - last_echo > stall:
                stall, stall_at = got - last_echo, last_echo
            last_echo = got
    stall_open = echoes.echoed < sent  # some lines never came back: the stall never ended
    if stall_open and time.monotonic() - last_echo > stall:
        stall, stall_at = time.monotonic() - last_echo, last_echo
    sock.close()
    print(json.dumps({"sent": sent, "echoed": echoes.echoed, "in_order": echoes.in_order,
                      "error": error,
                      "longest_stall_ms": stall * 1000.0, "stall_open": stall_open,
                      "stall_start": time.time() - (time.monotonic() - stall_at) if stall else None,
                      "duration_s": time.monotonic() - first}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
