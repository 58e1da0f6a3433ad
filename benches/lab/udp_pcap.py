#!/usr/bin/env python3
"""The bench scripts' traffic: 1000 IPv4 UDP frames, one per flow (source ports 10000-10999),
as a pcap for `weir send`.

    benches/lab/udp_pcap.py OUT [--reverse] [--payload BYTES] [--flows N]

--flows N spreads the 1000 frames over N flows instead (source ports 10000 to 10000 + N - 1).
Forward frames go 198.18.0.1 -> 198.18.0.2 (src -> dst in scripts/lab), --reverse the other
way. The default payload of 18 bytes makes 60-byte frames (64 on the wire with the FCS);
1472 makes 1514-byte frames. Standard library only.
"""
import argparse
import struct

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("out")
ap.add_argument("--reverse", action="store_true")
ap.add_argument("--payload", type=int, default=18)
ap.add_argument("--flows", type=int, default=1000)
a = ap.parse_args()
if not 1 <= a.flows <= 1000:
    ap.error("--flows must be 1 to 1000")
if not 18 <= a.payload <= 1472:
    ap.error("--payload must be 18 to 1472 bytes (a 60- to 1514-byte frame)")

hosts = ([198, 18, 0, 1], [198, 18, 0, 2])
macs = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
src, dst = (1, 0) if a.reverse else (0, 1)
with open(a.out, "wb") as out:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(1000):
        udp = struct.pack("!HHHH", 10000 + i % a.flows, 9, 8 + a.payload, 0) + bytes(a.payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + a.payload, i, 0, 64, 17, 0,
                         bytes(hosts[src]), bytes(hosts[dst]))
        s = sum(struct.unpack("!10H", ip))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
        frame = bytes(macs[dst]) + bytes(macs[src]) + b"\x08\x00" + ip + udp
        out.write(struct.pack("<IIII", 1700000000, i, len(frame), len(frame)) + frame)
