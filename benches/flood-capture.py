#!/usr/bin/env python3
"""Write a capture of N distinct flows (default 1,000,000) for flood measurements: TCP SYNs and
20-byte UDP datagrams, alternately, from pseudo-random sources in 10.0.0.0/8 (xorshift, the
same sequence as tests/flood.rs) to 250 servers in 198.18.2.0/24, 10 us apart.

    python3 benches/flood-capture.py /tmp/flood1m.pcap [N]
    /usr/bin/time -f "%e s, peak RSS %M KB" target/release/weir replay /tmp/flood1m.pcap -c CONFIG --json
"""
import struct
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/flood1m.pcap"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
t0 = 1_796_083_200
M = (1 << 64) - 1
state = 0x9E3779B97F4A7C15
with open(path, "wb") as out:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i in range(n):
        state ^= (state << 13) & M
        state ^= state >> 7
        state ^= (state << 17) & M
        src = bytes([10, (state >> 8) & 255, (state >> 16) & 255, (state >> 24) & 255])
        sport = ((state >> 32) & 0xFFFF) | 1024
        dst = bytes([198, 18, 2, i % 250 + 1])
        if i % 2 == 0:
            l4 = struct.pack(">HHIIBBHHH", sport, 80, state & 0xFFFFFFFF, 0, 5 << 4, 2, 1000, 0, 0)
            proto = 6
        else:
            l4 = struct.pack(">HHHH", sport, 53, 28, 0) + bytes(20)
            proto = 17
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
        frame = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x03" + b"\x08\x00" + ip + l4
        ts = t0 * 1_000_000 + i * 10
        out.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)) + frame)
