#!/usr/bin/env python3
"""ping_hops.py DIR DUT: where a ping's round trip went, hop by hop, from the four captures
compare.sh writes with EC_TRACE=1 (DIR/DUT-src0.pcapng, -lan0, -wan0, -dst0, ICMP only).

Each echo request and its reply are matched by (id, seq) across the captures, and the round
trip is cut at each capture point: src0 out, lan0 in, wan0 out, dst0 in, and back. compare.sh
sets net.core.netdev_tstamp_prequeue=0 for the trace, so an incoming frame is stamped when
CPU 1's receive softirq takes it from the backlog (not when it was queued there): "lan0 > wan0"
is then the time the device under test held the request, from its receive softirq to its send,
the backlog wait is in "src0 > lan0". Prints, per DSCP, the worst round trips hop by hop and
each hop's p50 / p99 / max (ms). Needs tshark."""
import subprocess, sys

DEVS = ("src0", "lan0", "wan0", "dst0")
HOPS = ("src0>lan0", "lan0>wan0 (DUT)", "wan0>dst0", "dst0 answers", "dst0>wan0",
        "wan0>lan0 (DUT)", "lan0>src0")


def stamps(path):
    """(id, seq, icmp type) -> (first time seen, dsfield) in one capture."""
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "ip.dsfield", "-e", "icmp.type", "-e", "icmp.ident", "-e", "icmp.seq"],
                         capture_output=True, text=True, check=True).stdout
    seen = {}
    for line in out.splitlines():
        t, ds, ty, ident, seq = line.split("\t")
        seen.setdefault((ident, seq, ty), (float(t), ds))
    return seen


def pct(xs, q):
    return xs[max(0, int(len(xs) * q + 0.5) - 1)]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ping_hops.py DIR DUT")
    d, dut = sys.argv[1:]
    cap = {dev: stamps(f"{d}/{dut}-{dev}.pcapng") for dev in DEVS}
    trips = {}  # dsfield -> [(rtt, [hop ms...])]
    for (ident, seq, ty), (_, ds) in cap["src0"].items():
        if ty != "8":
            continue
        req = [cap[dev].get((ident, seq, "8")) for dev in DEVS]
        rep = [cap[dev].get((ident, seq, "0")) for dev in reversed(DEVS)]
        if None in req or None in rep:
            continue  # lost, or missed by a capture
        t = [x[0] for x in req + rep]
        trips.setdefault(ds, []).append((t[-1] - t[0], [(b - a) * 1e3 for a, b in zip(t, t[1:])]))
    for ds, rows in sorted(trips.items()):
        rows.sort(key=lambda r: r[0])
        rtts = [r[0] * 1e3 for r in rows]
        print(f"{dut}, dsfield {ds}: {len(rows)} round trips, p50 {pct(rtts, .5):.3f} p99 {pct(rtts, .99):.3f} ms")
        print("  " + " | ".join(HOPS))
        for rtt, hops in rows[-5:]:
            print(f"  rtt {rtt * 1e3:7.3f}: " + " ".join(f"{h:7.3f}" for h in hops))
        for i, name in enumerate(HOPS):
            xs = sorted(r[1][i] for r in rows)
            print(f"  {name:16s} p50 {pct(xs, .5):7.3f}  p99 {pct(xs, .99):7.3f}  max {xs[-1]:7.3f}")


if __name__ == "__main__":
    main()
