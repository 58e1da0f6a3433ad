#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from the committed captures, configs and docs.

    python3 fuzz/seeds.py   # writes fuzz/corpus/{payload,classify,pipeline,rule,config,capture}/

payload: for each TCP or UDP flow, its first 3 payloads joined, behind a control byte (the
transport in bit 0; cuts where the payloads met are approximated by the 2-bit fractions).
classify: each capture's first 64 frames in the target's framing (length, control, frame).
pipeline: each capture's first 256 frames, the control byte the gap before each in ms.
rule: every `match:` of configs/ and docs/ and every code span of docs/rules.md, alone and
after the one before it (a pair).
config: configs/*.ron and the ```ron blocks of docs/config.md.
capture: each committed capture's first 4 KB, and three small pcapng files of
../shared/captures/tcpdump (tcpdump's test captures, BSD licence) when they are there.
`cargo fuzz cmin` then keeps the seeds that add coverage.
"""
import hashlib
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = os.path.join(HERE, "..", "captures")


def frames(path, with_time=False):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    link = struct.unpack(e + "I", data[20:24])[0]
    if link != 1:
        return
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[at:at + 16])
        body = data[at + 16:at + 16 + incl]
        yield ((sec + frac / 1e6), body) if with_time else body
        at += 16 + incl


def l4_payload(f):
    """(proto, key, payload) of an Ethernet/IPv4-or-6 TCP/UDP frame (VLAN and PPPoE skipped)."""
    off, et = 12, None
    while off + 2 <= len(f):
        et = struct.unpack(">H", f[off:off + 2])[0]
        off += 2
        if et in (0x8100, 0x88a8):
            off += 2
            continue
        if et == 0x8864:
            off += 6
            et = {0x0021: 0x0800, 0x0057: 0x86dd}.get(struct.unpack(">H", f[off:off + 2])[0])
            off += 2
        break
    if et == 0x0800 and off + 20 <= len(f):
        ihl = (f[off] & 15) * 4
        proto, src, dst = f[off + 9], f[off + 12:off + 16], f[off + 16:off + 20]
        l4 = off + ihl
    elif et == 0x86dd and off + 40 <= len(f):
        proto, src, dst = f[off + 6], f[off + 8:off + 24], f[off + 24:off + 40]
        l4 = off + 40
    else:
        return None
    if proto == 6 and l4 + 20 <= len(f):
        start = l4 + (f[l4 + 12] >> 4) * 4
    elif proto == 17 and l4 + 8 <= len(f):
        start = l4 + 8
    else:
        return None
    ports = f[l4:l4 + 4]
    key = (proto, frozenset([src + ports[:2], dst + ports[2:]]))
    return proto, key, f[start:]


def write(dir_, blob):
    os.makedirs(dir_, exist_ok=True)
    name = hashlib.sha1(blob).hexdigest()
    with open(os.path.join(dir_, name), "wb") as out:
        out.write(blob)


def main():
    n_payload = n_classify = 0
    for name in sorted(os.listdir(CAPTURES)):
        if not name.endswith(".pcap"):
            continue
        fs = list(frames(os.path.join(CAPTURES, name)))
        if not fs:
            continue
        framed = b""
        for i, f in enumerate(fs[:64]):
            framed += struct.pack("<HB", len(f), (i & 1) | 2)
            framed += f
        write(os.path.join(HERE, "corpus", "classify"), framed)
        n_classify += 1
        flows = {}
        for f in fs:
            r = l4_payload(f)
            if r and r[2]:
                flows.setdefault(r[1], (r[0], []))[1].append(r[2])
        for proto, payloads in flows.values():
            first = payloads[:3]
            joined = b"".join(first)
            ctl = (0 if proto == 6 else 1)
            if len(first) > 1:
                q1 = min(3, 4 * len(first[0]) // max(len(joined), 1))
                ctl |= q1 << 1 | 3 << 3
            write(os.path.join(HERE, "corpus", "payload"), bytes([ctl]) + joined)
            n_payload += 1
    n_pipeline = 0
    for name in sorted(os.listdir(CAPTURES)):
        if not name.endswith(".pcap"):
            continue
        fs = list(frames(os.path.join(CAPTURES, name), with_time=True))[:256]
        if not fs:
            continue
        framed, last = b"", fs[0][0]
        for ts, f in fs:
            gap = max(0, min(255, int((ts - last) * 1000)))
            last = ts
            framed += struct.pack("<HB", len(f), gap) + f
        write(os.path.join(HERE, "corpus", "pipeline"), framed)
        n_pipeline += 1
    rules = []
    texts = [os.path.join(HERE, "..", "configs", n) for n in os.listdir(os.path.join(HERE, "..", "configs"))]
    texts += [os.path.join(HERE, "..", "docs", n) for n in os.listdir(os.path.join(HERE, "..", "docs")) if n.endswith(".md")]
    for path in sorted(texts):
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(r'match: "((?:[^"\\]|\\.)*)"', f.read()):
                if m.group(1) not in rules:
                    rules.append(m.group(1))
    with open(os.path.join(HERE, "..", "docs", "rules.md"), encoding="utf-8") as f:
        for m in re.finditer(r"`([^`\n]{3,200})`", f.read()):
            if m.group(1) not in rules:
                rules.append(m.group(1))
    for i, r in enumerate(rules):
        write(os.path.join(HERE, "corpus", "rule"), r.encode())
        if i:
            write(os.path.join(HERE, "corpus", "rule"), (rules[i - 1] + "\n" + r).encode())
    n_config = 0
    configs = os.path.join(HERE, "..", "configs")
    for name in sorted(os.listdir(configs)):
        if name.endswith(".ron"):
            with open(os.path.join(configs, name), "rb") as f:
                write(os.path.join(HERE, "corpus", "config"), f.read())
            n_config += 1
    with open(os.path.join(HERE, "..", "docs", "config.md"), encoding="utf-8") as f:
        for m in re.finditer(r"```ron\n(.*?)```", f.read(), re.S):
            write(os.path.join(HERE, "corpus", "config"), m.group(1).encode())
            n_config += 1
    n_capture = 0
    for name in sorted(os.listdir(CAPTURES)):
        if name.endswith(".pcap"):
            with open(os.path.join(CAPTURES, name), "rb") as f:
                write(os.path.join(HERE, "corpus", "capture"), f.read(4096))
            n_capture += 1
    tcpdump = os.path.join(HERE, "..", "..", "shared", "captures", "tcpdump")
    for name in ["bgp-orf.pcapng", "isis_sr.pcapng", "zmtp1-inf-loop-1.pcapng"]:
        path = os.path.join(tcpdump, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                write(os.path.join(HERE, "corpus", "capture"), f.read(4096))
            n_capture += 1
    print(f"seeds: payload {n_payload}, classify {n_classify}, pipeline {n_pipeline}, "
          f"rule {2 * len(rules) - 1}, config {n_config}, capture {n_capture}", file=sys.stderr)


if __name__ == "__main__":
    main()
