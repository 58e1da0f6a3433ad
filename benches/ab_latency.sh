#!/usr/bin/env bash
# The latency-under-load case of compare.sh for two (or more) weir binaries, measured in turns
# on one lab (weir-abl), so that a change to the queues or the AQM is judged against the drift
# of the machine rather than against a run from another hour.
#   benches/ab_latency.sh ROUNDS BIN_A BIN_B [BIN_C...]     (root; about 10 s per binary per round)
# Each turn starts `BIN run` with compare.sh's latency config (100 Mbit wan: `prio` for DSCP EF,
# `bulk` for the rest), floods `bulk` with 1514-byte UDP frames from 1000 flows at 200 Mbit/s
# (2x the link, sent by BIN_A's `weir send`), and pings through both classes at once: 250 pings
# each, 20 ms apart. Prints per turn the prio p99, the bulk p50 / p99 / max (ms) and loss, and
# how many bulk pings found the class empty (the sender had paused: a catch-up burst follows),
# then per binary the median of each column and the p99 over all of its bulk pings pooled.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ab_latency.sh: needs root" >&2; exit 2; }
[ $# -ge 3 ] || { echo "usage: benches/ab_latency.sh ROUNDS BIN_A BIN_B [BIN_C...]" >&2; exit 2; }
rounds=$1; shift
bins=("$@")
p=weir-abl
SRC="ip netns exec $p-src"
tmp=$(mktemp -d /tmp/weir-abl-XXXX)
wpid=""
cleanup() {
    [ -n "$wpid" ] && kill -TERM "$wpid" 2>/dev/null || true
    scripts/lab down "$p" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 benches/lab/udp_pcap.py "$tmp/big.pcap" --payload 1472

N=250
# RTTs (ms) of one ping run, one per line; a lost ping is "nan".
pings() { # $1 = output file, then ping args
    local f=$1; shift
    timeout 30 $SRC ping -n -c $N -i 0.02 -W 1 "$@" 198.18.0.2 2>/dev/null | python3 -c "
import sys, re
seq = ['nan'] * $N
for m in re.finditer(r'icmp_seq=([0-9]+) .*?time=([0-9.]+) ms', sys.stdin.read()):
    i = int(m.group(1)) - 1
    if 0 <= i < $N and seq[i] == 'nan': seq[i] = m.group(2)
print('\n'.join(seq))" > "$f"
}

timeout 20 scripts/lab down "$p" >/dev/null 2>&1 || true
timeout 20 scripts/lab up "$p" >/dev/null
sleep 0.5
: > "$tmp/rows"
for r in $(seq "$rounds"); do
    for b in "${!bins[@]}"; do
        timeout 120 ip netns exec $p-dut "${bins[$b]}" run -c benches/lab/latency.ron >/dev/null 2>"$tmp/err" &
        wpid=$!
        for _ in $(seq 100); do grep -q bridging "$tmp/err" && break; sleep 0.05; done
        grep -q bridging "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
        timeout 30 $SRC "${bins[0]}" send "$tmp/big.pcap" -i src0 --mbps 200 --loop 120 >/dev/null 2>&1 &
        sp=$!
        sleep 1
        pings "$tmp/prio" -Q 0xb8 &
        pp=$!
        pings "$tmp/bulk"
        wait $pp || true
        kill -TERM $sp 2>/dev/null || true
        wait $sp 2>/dev/null || true
        kill -TERM $wpid 2>/dev/null || true
        wait $wpid 2>/dev/null || true
        wpid=""
        python3 - "$r" "$b" "$tmp/prio" "$tmp/bulk" <<'PY' | tee -a "$tmp/rows"
import sys, math
def pct(v, q): return v[max(0, math.ceil(q * len(v)) - 1)] if v else float("nan")
r, b, prio, bulk = sys.argv[1:5]
p = sorted(float(x) for x in open(prio).read().split() if x != "nan")
raw = open(bulk).read().split()
k = sorted(float(x) for x in raw if x != "nan")
# A bulk ping under 1 ms found the class empty: the flood's sender had paused (descheduled)
# and will catch up with a burst. Counted, as a measure of how steady the load was.
print(r, b, f"{pct(p, .99):.3f}", f"{pct(k, .5):.3f}", f"{pct(k, .99):.3f}",
      f"{max(k) if k else float('nan'):.3f}", f"{1 - len(k) / max(1, len(raw)):.3f}",
      sum(x < 1.0 for x in k), ",".join(map(str, k)))
PY
    done
done
python3 - "$tmp/rows" "${bins[@]}" <<'PY'
import sys, statistics, math
rows = [l.split() for l in open(sys.argv[1])]
print("columns: prio p99, bulk p50, bulk p99, bulk max (ms), bulk loss, bulk pings that found the class empty")
for b, path in enumerate(sys.argv[2:]):
    mine = [r for r in rows if r[1] == str(b)]
    cols = [[float(r[i]) for r in mine if r[i] != "nan"] for i in range(2, 8)]
    med = [statistics.median(c) if c else float("nan") for c in cols]
    pooled = sorted(float(x) for r in mine if len(r) > 8 for x in r[8].split(","))
    p99 = pooled[max(0, math.ceil(.99 * len(pooled)) - 1)] if pooled else float("nan")
    print(f"bin {b} {path}: median {med[0]:.3f} {med[1]:.2f} {med[2]:.2f} {med[3]:.2f} {med[4]:.2f} {med[5]:g};"
          f" pooled bulk p99 {p99:.2f} ms over {len(pooled)} replies")
PY
