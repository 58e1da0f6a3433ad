#!/usr/bin/env bash
# Two (or more) weir binaries, measured in turns on the same lab: how one change moved the
# forwarding numbers, with the machine's drift spread over all of them rather than landing on one.
#   benches/ab.sh ROUNDS BIN_A BIN_B [BIN_C...]     (root; about 12 s per binary per round)
# Each turn starts `BIN run` unshaped (100 Gbit links) in lab weir-ab and measures:
#   pps1   60-byte frames/s reaching dst0, sent one way by `weir send --topspeed` (300,000 frames)
#   pps2   the same from both ends at once, frames/s received at both ends
#   tcp1   iperf3 one flow, 3 s, Gbit/s (offloads on)
#   tcp4   iperf3 four flows, 3 s, Gbit/s
# Prints one line per turn, then the median of each column per binary.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ab.sh: needs root" >&2; exit 2; }
[ $# -ge 3 ] || { echo "usage: benches/ab.sh ROUNDS BIN_A BIN_B [BIN_C...]" >&2; exit 2; }
rounds=$1; shift
bins=("$@")
p=weir-ab
SRC="ip netns exec $p-src" DST="ip netns exec $p-dst"
tmp=$(mktemp -d /tmp/weir-ab-XXXX)
wpid=""
cleanup() {
    [ -n "$wpid" ] && kill -TERM "$wpid" 2>/dev/null || true
    scripts/lab down "$p" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 benches/lab/udp_pcap.py "$tmp/fwd.pcap"
python3 benches/lab/udp_pcap.py "$tmp/rev.pcap" --reverse

rxp() { timeout 5 ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }
secs() { grep -o 'in [0-9.]* s' "$1" | grep -o '[0-9.]*'; }
send_bin=${bins[0]}
tcp() { # flows -> Gbit/s
    timeout 25 $DST iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local sp=$!
    sleep 0.3
    timeout 20 $SRC iperf3 -c 198.18.0.2 -p 5201 -t 3 -P "$1" -J 2>/dev/null |
        python3 -c "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9, 2))" || echo nan
    wait $sp 2>/dev/null || true
}

timeout 20 scripts/lab down "$p" >/dev/null 2>&1 || true
timeout 20 scripts/lab up "$p" >/dev/null
sleep 0.5
echo "round bin pps1 pps2 tcp1 tcp4" > "$tmp/rows"
for r in $(seq "$rounds"); do
    for b in "${!bins[@]}"; do
        bin=${bins[$b]}
        timeout 300 ip netns exec $p-dut "$bin" run -c benches/lab/unshaped.ron >/dev/null 2>"$tmp/err" &
        wpid=$!
        for _ in $(seq 100); do grep -q bridging "$tmp/err" && break; sleep 0.05; done
        grep -q bridging "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
        r0=$(rxp $p-dst dst0)
        timeout 60 $SRC "$send_bin" send "$tmp/fwd.pcap" -i src0 --topspeed --loop 300 > "$tmp/s1" 2>/dev/null
        sleep 0.3
        r1=$(rxp $p-dst dst0)
        pps1=$(python3 -c "print(round(($r1 - $r0) / $(secs "$tmp/s1")))")
        r0=$(rxp $p-dst dst0); q0=$(rxp $p-src src0)
        timeout 60 $SRC "$send_bin" send "$tmp/fwd.pcap" -i src0 --topspeed --loop 300 > "$tmp/sa" 2>/dev/null &
        a=$!
        timeout 60 $DST "$send_bin" send "$tmp/rev.pcap" -i dst0 --topspeed --loop 300 > "$tmp/sb" 2>/dev/null &
        c=$!
        wait $a $c || true
        sleep 0.3
        r1=$(rxp $p-dst dst0); q1=$(rxp $p-src src0)
        pps2=$(python3 -c "print(round(($r1 - $r0 + $q1 - $q0) / max($(secs "$tmp/sa"), $(secs "$tmp/sb"))))")
        t1=$(tcp 1); t4=$(tcp 4)
        kill -TERM $wpid 2>/dev/null || true
        wait $wpid 2>/dev/null || true
        wpid=""
        echo "$r $b $pps1 $pps2 $t1 $t4" | tee -a "$tmp/rows"
    done
done
python3 - "$tmp/rows" "${bins[@]}" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])][1:]
for b, path in enumerate(sys.argv[2:]):
    mine = [r for r in rows if r[1] == str(b)]
    cols = [[float(r[i]) for r in mine if r[i] != "nan"] for i in range(2, 6)]
    med = [statistics.median(c) if c else float("nan") for c in cols]
    rng = [f"{min(c):g}-{max(c):g}" if c else "-" for c in cols]
    print(f"bin {b} {path}\n  median pps1 {med[0]:.0f}  pps2 {med[1]:.0f}  tcp1 {med[2]:.2f}  tcp4 {med[3]:.2f} Gbit/s")
    print(f"  range  pps1 {rng[0]}  pps2 {rng[1]}  tcp1 {rng[2]}  tcp4 {rng[3]}")
PY
