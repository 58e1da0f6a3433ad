#!/usr/bin/env python3
"""weir sniff against tshark, capture by capture: frame count, then for each IP frame the
outermost source and destination address, and the ports where tshark shows them.

    cargo build --release
    python3 benches/sniff_oracle.py ../shared/captures/zeek [WEIR]

Prints each capture that disagrees (with how many frames) and the totals. Known reasons for a
disagreement (docs/sniff.md): tshark shows the ports of the header an ICMP error quotes and of
a datagram it reassembled from fragments, and looks inside tunnels (ERSPAN, MPLS, FabricPath,
PBB) that weir reads only to their outer header.
"""
import glob
import json
import os
import subprocess
import sys

folder = sys.argv[1] if len(sys.argv) > 1 else "../shared/captures/zeek"
weir = sys.argv[2] if len(sys.argv) > 2 else "target/release/weir"
FIELDS = ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport"]

agree = disagree = skipped = frames = 0
for path in sorted(glob.glob(os.path.join(folder, "**", "*.pcap"), recursive=True)):
    ours = subprocess.run([weir, "sniff", path, "--json"], capture_output=True, timeout=300)
    if ours.returncode != 0:
        skipped += 1  # weir refuses it (a link type it does not read, a damaged file)
        continue
    ours = [json.loads(line) for line in ours.stdout.decode().splitlines()]
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=|"]
    for f in FIELDS:
        cmd += ["-e", f]
    theirs = subprocess.run(cmd, capture_output=True, timeout=300).stdout.decode().splitlines()
    if len(theirs) != len(ours):
        disagree += 1
        print(f"{path}: {len(ours)} frames, tshark {len(theirs)}")
        continue
    wrong = 0
    for o, line in zip(ours, theirs):
        fs = [x.split(",")[0] for x in line.split("|")]
        src, dst = (fs[1], fs[2]) if fs[1] else (fs[3], fs[4])
        if not src:
            continue
        frames += 1
        if o.get("src") != src or o.get("dst") != dst:
            wrong += 1
            continue
        sport, dport = (fs[5], fs[6]) if fs[5] else (fs[7], fs[8])
        if sport and (str(o.get("sport")) != sport or str(o.get("dport")) != dport):
            wrong += 1
    if wrong:
        disagree += 1
        print(f"{path}: {wrong} of {len(ours)} frames differ")
    else:
        agree += 1
print(f"{agree} captures agree, {disagree} differ, {skipped} refused by weir; {frames} IP frames compared")
