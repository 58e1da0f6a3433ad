#!/usr/bin/env python3
"""weir's payload protocols against tshark's dissectors, flow by flow, over captures.

    benches/apps_oracle.py [--weir BIN] [--config FILE] [--show N] PATH...

For each capture, `weir replay --flows` gives each flow's `app` and whether it was told from
payload (`app_source`); tshark, with its RTP, RTCP, uTP, STUN and WireGuard heuristics on, gives each
frame's protocol stack. A flow's tshark protocol is the first of weir's set (tls, http, ssh,
dns, quic, stun, wireguard, rtp, bittorrent, sip) in its frames. Flows are matched by protocol
and both endpoints; flows inside tunnels are left out (weir classifies them by their outer
header), as are flows tshark puts in none of the set.

Prints, per protocol: flows tshark names, how many weir tells the same from payload, how many
it tells as something else, how many it leaves to the ports; and the flows weir tells that
tshark does not name at all. Then the headline of issue 11: UDP flows with a port in RTP's
usual ranges, and how many of them `app rtp` takes by port (before) and from payload (now).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from names_oracle import TUNNELS, captures, tshark_rows  # noqa: E402

FIELDS = [
    "frame.protocols", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
]
# tshark's protocol names, as weir names the protocol.
PROTOCOLS = {
    "tls": "tls", "http": "http", "ssh": "ssh", "dns": "dns", "mdns": "dns", "llmnr": "dns",
    "quic": "quic", "gquic": "quic", "stun": "stun", "wg": "wireguard", "rtp": "rtp",
    "rtcp": "rtp", "srtp": "rtp", "srtcp": "rtp", "bittorrent": "bittorrent",
    "bt-dht": "bittorrent", "bt-utp": "bittorrent", "sip": "sip",
}
HEURISTICS = ["rtp_udp", "rtcp_udp", "bt_utp_udp", "stun_udp", "wg"]  # bt-dht is on by default
RTP_PORTS = [(10000, 20000), (16384, 32767)]


def tshark_protocols(path):
    """{(proto, frozenset(endpoints)): (protocol or None, layers, ports)}"""
    extra = [arg for h in HEURISTICS for arg in ("--enable-heuristic", h)]
    rows = tshark_rows(path, FIELDS, extra)
    if rows is None:
        return None
    flows = {}
    for v, key, ports in rows:
        stack = v.get("frame.protocols", "").split(":")
        layers = ":".join(p for p in stack if p in TUNNELS)
        found = next((PROTOCOLS[p] for p in stack if p in PROTOCOLS), None)
        have = flows.get(key)
        if have is None:
            flows[key] = (found, layers, ports)
        elif have[0] is None and found:
            flows[key] = (found, have[1] or layers, have[2])
    return flows


def weir_apps(weir, config, path):
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        subprocess.run([weir, "replay", path, "-c", config, "--flows", f.name],
                       capture_output=True, text=True, timeout=300)
        flows = {}
        for line in open(f.name):
            d = json.loads(line)
            key = (d["proto"], frozenset([d["src"], d["dst"]]))
            app = d.get("app") if d.get("app_source") == "payload" else None
            flows[key] = {"https": "tls"}.get(app, app)
        return flows


def in_rtp_ports(ports):
    return any(lo <= p <= hi for p in ports for lo, hi in RTP_PORTS)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", default=os.path.join(here, "..", "target", "release", "weir"))
    ap.add_argument("--config", default=os.path.join(here, "..", "configs", "home.ron"))
    ap.add_argument("--show", type=int, default=30, help="disagreements to list")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    per = defaultdict(Counter)
    extra = Counter()
    rtp = Counter()
    shown = []
    files = 0
    for path in captures(a.paths):
        theirs = tshark_protocols(path)
        if not theirs:
            continue
        ours = weir_apps(a.weir, a.config, path)
        files += 1
        for key, (found, layers, ports) in theirs.items():
            if layers or key not in ours:
                continue
            got = ours[key]
            if key[0] == "udp" and in_rtp_ports(ports):
                truth = "rtp" if found == "rtp" else "not rtp"
                rtp[(truth, "by port")] += 1
                rtp[(truth, "from payload")] += got == "rtp"
            if found is None:
                if got is not None:
                    extra[got] += 1
                    shown.append(("weir tells, tshark names none", path, key[0],
                                  sorted(key[1]), got))
                continue
            if got == found:
                per[found]["same"] += 1
            elif got is None:
                per[found]["ports"] += 1
            else:
                per[found]["other"] += 1
                shown.append(("different", path, key[0], sorted(key[1]), found, got))
    print(f"captures: {files}")
    print(f"{'protocol':<12}{'tshark':>8}{'same':>8}{'other':>8}{'ports':>8}")
    total = Counter()
    for p, c in sorted(per.items()):
        n = sum(c.values())
        total.update(c)
        print(f"{p:<12}{n:>8}{c['same']:>8}{c['other']:>8}{c['ports']:>8}")
    n = sum(total.values())
    print(f"{'all':<12}{n:>8}{total['same']:>8}{total['other']:>8}{total['ports']:>8}")
    print(f"told by weir, named by no tshark dissector: {sum(extra.values())} {dict(extra)}")
    print("UDP flows with a port in 10000-20000 or 16384-32767:")
    for truth in ("rtp", "not rtp"):
        n = rtp[(truth, "by port")]
        print(f"  tshark {truth}: {n}; `app rtp` takes {n} by port, "
              f"{rtp[(truth, 'from payload')]} from payload")
    for s in shown[: a.show]:
        print("   ", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
