#!/usr/bin/env python3
"""Plot the latency-under-load pings of a benches/compare.sh results JSON as an RTT CDF (SVG).

    python3 benches/plot_latency.py target/compare/results-X.json [--out FILE.svg]

Reads `samples[device]["load_prio" | "load_bulk" | "sparse_bulk"]` (the last: a bulk-class ping
beside a load of one flow): one entry per ping sent, in icmp_seq order,
the RTT in ms or null when no reply came. Draws one step curve per (device, class) for bridge-htb,
weir-afp and weir-pnet (those present): colour = device, solid = priority class (ping -Q 0xb8),
dashed = bulk class, dotted = bulk class beside the one-flow load. y is the fraction of the pings *sent* that were answered within x ms, so a
curve levels off at 1 - lost; the lost fraction is also written in the legend. x is logarithmic,
0.01 ms to 1000 ms; RTTs outside are drawn at the edge. Default output: latency-X.svg beside the
JSON. Standard library only (no matplotlib here): the SVG is written by hand.
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

DEVICES = [  # (key in the JSON, colour, legend name)
    ("bridge-htb", "#c0392b", "bridge + HTB"),
    ("weir-afp", "#1f5fbf", "weir (af_packet)"),
    ("weir-mmsg", "#e67e22", "weir (--rx mmsg)"),
    ("weir-ring", "#8a2be2", "weir (--rx ring)"),
    ("weir-pnet", "#2e8b3e", "weir (pnet)"),
]
CLASSES = [  # (key in the JSON, stroke-dasharray, legend name)
    ("load_prio", "none", "prio (EF)"),
    ("load_bulk", "8 4", "bulk"),
    ("sparse_bulk", "2 3", "bulk, 1-flow load"),
]
X_MIN, X_MAX = 0.01, 1000.0  # ms
WIDTH, HEIGHT = 950, 470
LEFT, TOP, PLOT_W, PLOT_H = 70, 62, 520, 340  # plot area; the legend sits to its right
Y_PAD = 8  # px inside the frame above 1.0 and below 0.0, so curves there stay visible


def sx(ms):
    ms = min(max(ms, X_MIN), X_MAX)
    return LEFT + PLOT_W * math.log10(ms / X_MIN) / math.log10(X_MAX / X_MIN)


def sy(frac):
    return TOP + Y_PAD + (PLOT_H - 2 * Y_PAD) * (1 - frac)


def cdf_path(rtts, sent):
    """Step CDF over `sent` pings: from 0 at the first reply's RTT, up 1/sent at each reply's RTT,
    then flat to the right edge (at 1 - lost)."""
    pts, y = [(min(rtts, default=X_MIN), 0.0)], 0.0
    for r in sorted(rtts):
        pts.append((r, y))
        y += 1 / sent
        pts.append((r, y))
    pts.append((X_MAX, y))
    return "M " + " L ".join(f"{sx(x):.1f},{sy(f):.1f}" for x, f in pts)


def text(x, y, s, size=12, anchor="start", extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
            f"{escape(s)}</text>")


def axes():
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="white" stroke="#333"/>']
    bottom = TOP + PLOT_H
    for e in range(round(math.log10(X_MIN)), round(math.log10(X_MAX)) + 1):
        x = sx(10.0 ** e)
        if e < round(math.log10(X_MAX)):  # minor ticks 2..9 x 10^e
            for m in range(2, 10):
                xm = sx(m * 10.0 ** e)
                out.append(f'<line x1="{xm:.1f}" y1="{bottom}" x2="{xm:.1f}" y2="{bottom - 4}" stroke="#333"/>')
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom - 8}" stroke="#333"/>')
        out.append(text(x, bottom + 18, f"{10.0 ** e:g}", anchor="middle"))
    for i in range(6):
        f = i / 5
        y = sy(f)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + 6}" y2="{y:.1f}" stroke="#333"/>')
        out.append(text(LEFT - 8, y + 4, f"{f:.1f}", anchor="end"))
    out.append(text(LEFT + PLOT_W / 2, bottom + 40, "round-trip time (ms, log scale)", 13, "middle"))
    yl, ym = LEFT - 44, TOP + PLOT_H / 2
    out.append(text(yl, ym, "fraction of pings sent answered within x", 13, "middle",
                    f' transform="rotate(-90 {yl} {ym:.1f})"'))
    return out


def curves_and_legend(samples):
    out, n = [], 0
    lx, ly = LEFT + PLOT_W + 24, TOP + 8
    for dev, colour, dev_name in DEVICES:
        for run, dash, class_name in CLASSES:
            pings = samples.get(dev, {}).get(run)
            if not pings:
                continue
            rtts = [r for r in pings if r is not None]
            lost = len(pings) - len(rtts)
            style = f'fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"'
            out.append(f'<path d="{cdf_path(rtts, len(pings))}" {style}/>')
            y = ly + 22 * n
            out.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 34}" y2="{y}" {style}/>')
            label = f"{dev_name}, {class_name}: lost {lost / len(pings):.2f} of {len(pings)}"
            out.append(text(lx + 42, y + 4, label))
            n += 1
    if n:
        y = ly + 22 * n + 6
        for i, line in enumerate(["A curve levels off at 1 - lost:", "lost pings are not drawn."]):
            out.append(text(lx, y + 16 * i, line, 11, extra=' fill="#555"'))
    return out, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="target/compare/results-X.json from benches/compare.sh")
    ap.add_argument("--out", help="SVG to write (default: latency-X.svg beside the JSON)")
    args = ap.parse_args()
    with open(args.results) as f:
        res = json.load(f)
    curves, n = curves_and_legend(res.get("samples") or {})
    if n == 0:
        sys.exit(f"plot_latency.py: no latency-under-load samples in {args.results} "
                 "(compare.sh keeps them since the plot was added)")
    out = args.out
    if out is None:
        d, base = os.path.split(args.results)
        out = os.path.join(d, "latency-" + base.removeprefix("results-").removesuffix(".json") + ".svg")
    sub = (f"{res.get('date', '?')}, kernel {res.get('kernel', '?')}, nproc {res.get('nproc', '?')}"
           + (", --quick" if res.get("quick") else "")
           + "; 100 Mbit/s link, unresponsive UDP at 2x into bulk (1000 flows; dotted: 1 flow)")
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           text(LEFT, 24, "Ping RTT under load, CDF: weir vs Linux bridge + HTB", 16,
                extra=' font-weight="bold"'),
           text(LEFT, 44, sub, 12, extra=' fill="#444"'),
           *axes(), *curves, "</svg>"]
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"SVG: {out}")


if __name__ == "__main__":
    main()
