#!/usr/bin/env python3
"""Light flows beside a flood, in replay: what each flow of one class gets, per weir binary.

    python3 benches/sparse_replay.py WEIR [WEIR...] [--seconds S] [--fairness F]

Writes a capture of one 4 Mbit/s class's traffic (upload, 198.18.0.0/24 -> 198.19.0.1):
an 8 Mbit/s unresponsive UDP flow of 1500-byte frames, two 0.9 Mbit/s flows of 1500-byte
frames, and an 80 kbit/s flow of 100-byte frames (a voice-like flow), each with its own source
address, paced with a little jitter; replays it with each binary (`weir replay -c CFG --out`)
and counts, per flow, the frames sent and the frames that came out. Each light flow asks less
than its fair share (4/4 of the class between four flows, 4/3 between the three 1500-byte
ones): per-flow queueing should deliver nearly all of it. Standard library only.
"""
import argparse
import os
import random
import struct
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("weir", nargs="+", help="weir binaries to compare")
ap.add_argument("--seconds", type=float, default=30.0)
ap.add_argument("--fairness", default="flow", help="the class's fairness (default flow)")
a = ap.parse_args()

FLOWS = [  # (name, source host, frame bytes, bit/s)
    ("flood 8 Mbit/s", 10, 1500, 8_000_000),
    ("light 0.9 Mbit/s (a)", 11, 1500, 900_000),
    ("light 0.9 Mbit/s (b)", 12, 1500, 900_000),
    ("voice 80 kbit/s", 13, 100, 80_000),
]
CONFIG = """(
    lan_networks: ["198.18.0.0/24"],
    ports: (
        wan: (rate: "4 Mbit", overhead: 24, classes: [
            (name: "bulk", match: "default", rate: "4 Mbit", fairness: %s),
        ]),
        lan: (rate: "100 Mbit", classes: [(name: "all", match: "default", rate: "100 Mbit")]),
    ),
)
"""


def frame(host, size, seq):
    payload = size - 42
    udp = struct.pack("!HHHH", 5000 + host, 9, 8 + payload, 0) + bytes(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + payload, seq & 0xFFFF, 0, 64, 17, 0,
                     bytes([198, 18, 0, host]), bytes([198, 19, 0, 1]))
    s = sum(struct.unpack("!10H", ip))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
    return bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, host]) + b"\x08\x00" + ip + udp


def write_capture(path):
    rng = random.Random(1)
    events = []
    for _, host, size, bps in FLOWS:
        gap = (size + 24) * 8 / bps
        t = rng.uniform(0, gap)
        seq = 0
        while t < a.seconds:
            events.append((t, host, size, seq))
            seq += 1
            t += gap * rng.uniform(0.9, 1.1)
    events.sort()
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, host, size, seq in events:
            f = frame(host, size, seq)
            sec, usec = 1_700_000_000 + int(t), int((t % 1) * 1e6)
            out.write(struct.pack("<IIII", sec, usec, len(f), len(f)) + f)
    sent = {}
    for _, host, _, _ in events:
        sent[host] = sent.get(host, 0) + 1
    return sent


def count_out(path):
    got = {}
    with open(path, "rb") as f:
        magic = f.read(24)[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            incl = struct.unpack(endian + "IIII", h)[2]
            data = f.read(incl)
            host = data[14 + 15]  # last byte of the IPv4 source
            got[host] = got.get(host, 0) + 1
    return got


with tempfile.TemporaryDirectory(prefix="weir-sparse-") as d:
    cap, cfg, out = (os.path.join(d, n) for n in ("in.pcap", "c.ron", "out.pcap"))
    sent = write_capture(cap)
    with open(cfg, "w") as f:
        f.write(CONFIG % a.fairness)
    print(f"{a.seconds:g} s, one 4 Mbit/s class, fairness {a.fairness}")
    for weir in a.weir:
        r = subprocess.run([weir, "replay", cap, "-c", cfg, "--out", out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"{weir} replay failed: {r.stderr.strip()}")
        got = count_out(out)
        print(f"\n{weir}")
        for name, host, size, bps in FLOWS:
            s, g = sent[host], got.get(host, 0)
            print(f"  {name:<22} sent {s:>6}  delivered {g:>6}  lost {100 * (s - g) / s:5.1f}%  "
                  f"delivered {g * (size + 24) * 8 / a.seconds / 1e6:.3f} Mbit/s")
