#!/usr/bin/env python3
"""weir's server names against tshark's, flow by flow, over captures.

    benches/names_oracle.py [--weir BIN] [--config FILE] [--show N] PATH...

PATH is a capture or a folder (searched recursively). For each capture, `weir replay --flows`
gives each flow's server name and its source; tshark (an independent dissector) gives, per
frame, `tls.handshake.extensions_server_name`, `http.host` and `dns.qry.name`. A flow's tshark
name is the first one in its frames, in the same order weir reads them (the first frames of
the flow that carry one). Flows are matched by protocol and both endpoints.

Also compares the software of each flow's first SSH identification string (`ssh.protocol`)
with weir's `ssh_software` (counted apart).

Prints: flows where tshark finds a name, how many of them weir names the same (lower case,
no trailing dot, no port), and the disagreements with their captures, grouped by kind. Exits 1
when the agreement is under --min-agreement (percent), else 0.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

FIELDS = [
    "frame.protocols",
    "frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "ip.proto", "ipv6.nxt",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
    "tls.handshake.extensions_server_name", "http.host", "dns.qry.name", "ssh.protocol",
]
SOURCE = {
    "tls.handshake.extensions_server_name": "sni",
    "http.host": "http",
    "dns.qry.name": "dns",
}


# Encapsulations weir does not look into (it classifies a tunnel by its outer header; an ICMP
# error by its own header, not the packet it quotes).
TUNNELS = ("gre", "vxlan", "erspan", "gtp", "geneve", "ayiya", "teredo", "mpls",
           "socks", "nflog", "radiotap", "wlan", "llc", "icmp", "icmpv6")


def is_address(name):
    return name.replace(".", "").isdigit() or ":" in name or name.startswith("[")


def endpoint(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def norm(name, source):
    name = name.strip().lower()
    if source == "http" and not name.startswith("[") and ":" in name:
        host, _, port = name.rpartition(":")
        if port.isdigit():
            name = host
    return name.rstrip(".")


def tshark_rows(path, fields, extra=()):
    """Each TCP or UDP frame of `path` as tshark reads it: (its `fields`, the flow's key
    (proto, frozenset of both endpoints), the outer source and destination ports); None when
    tshark takes too long."""
    cmd = ["tshark", "-r", path, "-n", "-T", "fields", "-E", "separator=\t", "-E",
           "occurrence=f", *extra]
    for f in fields:
        cmd += ["-e", f]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    except subprocess.TimeoutExpired:
        return None
    rows = []
    for line in out.splitlines():
        v = dict(zip(fields, line.split("\t")))
        src = v.get("ip.src") or v.get("ipv6.src")
        dst = v.get("ip.dst") or v.get("ipv6.dst")
        # Tunnelled frames carry several addresses: the first (outer) is what weir keys on.
        src, dst = (src or "").split(",")[0], (dst or "").split(",")[0]
        if v.get("tcp.srcport"):
            proto, sp, dp = "tcp", v["tcp.srcport"], v["tcp.dstport"]
        elif v.get("udp.srcport"):
            proto, sp, dp = "udp", v["udp.srcport"], v["udp.dstport"]
        else:
            continue
        if not src or not dst:
            continue
        sp, dp = sp.split(",")[0], dp.split(",")[0]
        rows.append((v, (proto, frozenset([endpoint(src, sp), endpoint(dst, dp)])),
                     (int(sp), int(dp))))
    return rows


def ssh_software(banner):
    """The software of an SSH identification string, as weir keeps it (32 bytes at most)."""
    rest = banner.strip()[4:]
    if "-" not in rest:
        return None
    return rest.split("-", 1)[1].split(" ")[0][:32] or None


def tshark_names(path):
    """{(proto, frozenset(endpoints)): (source, name, layers)} for the first name of each flow
    (`layers` names the encapsulation weir does not look into, if any), and
    {(proto, frozenset(endpoints)): software} of each flow's first SSH banner (not inside a
    tunnel)."""
    rows = tshark_rows(path, FIELDS)
    if rows is None:
        return None, {}
    flows, ssh = {}, {}
    for v, key, _ in rows:
        banner = v.get("ssh.protocol", "")
        tunnelled = any(p in TUNNELS for p in v.get("frame.protocols", "").split(":"))
        if banner.startswith("SSH-") and key not in ssh and not tunnelled:
            ssh[key] = ssh_software(banner)
        if key in flows:
            continue
        for field, source in SOURCE.items():
            name = v.get(field, "")
            # tshark's own notes ("<name contains a pointer that loops>") are not names.
            if name and not name.startswith("<"):
                protocols = v.get("frame.protocols", "").split(":")
                layers = [p for p in protocols if p in TUNNELS]
                if source == "sni" and "quic" in protocols:
                    source = "quic"
                flows[key] = (source, norm(name, source), ":".join(layers))
                break
    return flows, ssh


def weir_names(weir, config, path):
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        r = subprocess.run([weir, "replay", path, "-c", config, "--flows", f.name],
                           capture_output=True, text=True, timeout=300)
        flows = {}
        for line in open(f.name):
            d = json.loads(line)
            key = (d["proto"], frozenset([d["src"], d["dst"]]))
            flows[key] = (d.get("name_source"), d.get("server_name"), d.get("ssh_software"))
        return flows, r.returncode


def captures(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                for name in sorted(files):
                    if name.endswith((".pcap", ".pcapng", ".cap", ".trace", ".dump")):
                        yield os.path.join(root, name)
        else:
            yield p


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", default=os.path.join(here, "..", "target", "release", "weir"))
    ap.add_argument("--config", default=os.path.join(here, "..", "configs", "home.ron"))
    ap.add_argument("--show", type=int, default=50, help="disagreements to list")
    ap.add_argument("--min-agreement", type=float, default=0.0,
                    help="exit 1 when weir agrees on fewer flows than this percentage")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    total = agree = files = 0
    kinds = Counter()
    excluded = Counter()
    by_source = defaultdict(lambda: [0, 0])
    disagreements = []
    ssh_total = ssh_agree = 0
    for path in captures(a.paths):
        theirs, ssh = tshark_names(path)
        if not theirs and not ssh:
            continue
        ours, _ = weir_names(a.weir, a.config, path)
        files += 1
        for key, software in ssh.items():
            got = ours.get(key, (None, None, None))[2]
            ssh_total += 1
            if got == software:
                ssh_agree += 1
            else:
                disagreements.append(("ssh software", path, key[0], sorted(key[1]), software, got))
        for key, (source, name, layers) in theirs.items():
            got = ours.get(key)
            # A name from weir's DNS cache is not read from this flow's payload: not compared.
            if got is not None and got[0] == "dns-cache":
                got = (None, None, None)
            # Not a server name weir could agree on: an address written where a name goes, or
            # bytes no host name holds (tshark prints them escaped).
            if is_address(name) or "\\" in name:
                excluded[f"tshark's {source} name is an address or not a host name"] += 1
                continue
            if layers:
                excluded[f"inside {layers} (weir classifies the outer header)"] += 1
                continue
            total += 1
            by_source[source][0] += 1
            if got is None:
                kind = "flow not listed by weir"
            elif got[1] == name:
                agree += 1
                by_source[source][1] += 1
                continue
            elif got[1] is None:
                kind = f"weir found no name ({source})"
            else:
                kind = f"different name (tshark {source}, weir {got[0]})"
            kinds[kind] += 1
            proto, ends = key
            disagreements.append((kind, path, proto, sorted(ends), name, got))
    print(f"captures with a name: {files}; flows with a tshark name: {total}; "
          f"weir agrees on {agree} ({100.0 * agree / max(total, 1):.2f}%)")
    for source, (n, ok) in sorted(by_source.items()):
        print(f"  {source}: {ok} of {n}")
    print(f"flows with an SSH banner: {ssh_total}; weir keeps the software of tshark's first "
          f"one on {ssh_agree}")
    for kind, n in kinds.most_common():
        print(f"  {n:5d}  {kind}")
    for kind, n in excluded.most_common():
        print(f"  not counted: {n:5d}  {kind}")
    for d in disagreements[: a.show]:
        print("   ", d)
    return 0 if 100.0 * agree >= a.min_agreement * total else 1


if __name__ == "__main__":
    sys.exit(main())
