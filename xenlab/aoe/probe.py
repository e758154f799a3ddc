"""A self-contained AoE probe: sends given Ethernet frames on an interface and prints every
AoE frame sent and received within a window, as JSON.

It uses the standard library only (an AF_PACKET socket bound to the AoE ethertype), so it
runs on any lab host with python3: the harness ships this file's source over the host's
connection (`python3 -c SOURCE ...`) and builds and dissects the frames itself with scapy.

    python3 probe.py IFACE WINDOW_S HEXFRAME [HEXFRAME ...]
"""

import json
import select
import socket
import sys
import time

ETH_P_AOE = 0x88A2
PACKET_OUTGOING = 4


def main(argv: list) -> int:
    iface, window, frames = argv[1], float(argv[2]), argv[3:]
    with open(f"/sys/class/net/{iface}/address") as f:
        mac = f.read().strip()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_AOE))
    sock.bind((iface, 0))
    seen = []
    src = bytes.fromhex(mac.replace(":", ""))
    for text in frames:
        raw = bytearray.fromhex(text)
        raw[6:12] = src  # our own MAC as the source, whatever the builder put there
        sock.send(bytes(raw))
        seen.append({"t": time.time(), "out": True, "hex": raw.hex()})  # not echoed to us
    deadline = time.monotonic() + window
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        data, address = sock.recvfrom(65535)
        seen.append({"t": time.time(), "out": address[2] == PACKET_OUTGOING, "hex": data.hex()})
    sock.close()
    print(json.dumps({"interface": iface, "mac": mac, "frames": seen}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
