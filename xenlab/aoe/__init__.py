"""ATA over Ethernet at frame level: building and dissecting frames (scapy), probing a
target from a host on the storage segment, and checking captures offline."""
