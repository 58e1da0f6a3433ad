#!/usr/bin/env bash
# The thread layouts of `weir run` (run-to-completion, per-direction), measured through
# weir in a lab of its own.
#   benches/threads.sh [ROUNDS]   (root; builds the release binary; about 15 s per round)
# For each round and each layout: TCP goodput of one and of four iperf3 flows for 4 s (offloads
# on), and
# the rate at which 60-byte frames sent by `weir send --topspeed` reach weir-bench-dst (counted
# by dst0's receive counter).
# The config shapes nothing (100 Gbit link): this measures forwarding, not shaping.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
p=weir-bench
cargo build --release --quiet
weir=$PWD/target/release/weir
cfg=benches/lab/unshaped.ron
small=$(mktemp /tmp/weir-small-XXXX.pcap)
python3 benches/lab/udp_pcap.py "$small"   # 1000 UDP flows of 60-byte frames
cleanup() { scripts/lab down "$p" >/dev/null 2>&1 || true; rm -f "$small"; }
trap cleanup EXIT
scripts/lab down "$p" >/dev/null 2>&1 || true
scripts/lab up "$p" >/dev/null
sleep 1
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
printf '%-18s %5s %10s %11s %14s\n' layout round tcp_mbit tcp4_mbit small_frames_pps
for r in $(seq 1 "$rounds"); do
    for layout in run-to-completion per-direction; do
        ip netns exec $p-dut "$weir" run -c "$cfg" --threads $layout >/dev/null 2>/tmp/weir-threads.err &
        wpid=$!
        for _ in $(seq 100); do grep -q bridging /tmp/weir-threads.err && break; sleep 0.05; done
        ip netns exec $p-dst timeout 30 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.3
        tcp=$(ip netns exec $p-src timeout 30 iperf3 -c 198.18.0.2 -p 5201 -t 4 -J | json "print(round(d['end']['sum_received']['bits_per_second']/1e6))")
        ip netns exec $p-dst timeout 30 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.3
        tcp4=$(ip netns exec $p-src timeout 30 iperf3 -c 198.18.0.2 -p 5201 -t 4 -P 4 -J | json "print(round(d['end']['sum_received']['bits_per_second']/1e6))")
        rx0=$(ip netns exec $p-dst cat /sys/class/net/dst0/statistics/rx_packets)
        sent=$(ip netns exec $p-src "$weir" send "$small" -i src0 --topspeed --loop 300 | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')
        sleep 0.2
        rx1=$(ip netns exec $p-dst cat /sys/class/net/dst0/statistics/rx_packets)
        pps=$(python3 -c "print(round(($rx1 - $rx0) / $sent))")
        kill -TERM $wpid; wait $wpid || true
        printf '%-18s %5s %10s %11s %14s\n' $layout "$r" "$tcp" "$tcp4" "$pps"
    done
done
