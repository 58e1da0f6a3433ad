#!/usr/bin/env bash
# Split threads vs run-to-completion, measured through weir in a lab of its own.
#   benches/threads.sh [ROUNDS]   (root; builds the release binary; about 15 s per round)
# For each round and each layout: TCP goodput of one iperf3 flow for 4 s (offloads on), and
# the rate of 60-byte frames (iperf3 UDP, 18-byte payload, unlimited) that reach weir-bench-dst.
# The config shapes nothing (100 Gbit link): this measures forwarding, not shaping.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
p=weir-bench
cargo build --release --quiet
weir=$PWD/target/release/weir
cfg=$(mktemp /tmp/weir-threads-XXXX.ron)
cat > "$cfg" <<'RON'
(ports: (
    wan: (interface: "wan0", rate: "100 Gbit", classes: [(name: "all", match: "default", rate: "100 Gbit")]),
    lan: (interface: "lan0", rate: "100 Gbit", classes: [(name: "all", match: "default", rate: "100 Gbit")]),
))
RON
cleanup() { scripts/lab down "$p" >/dev/null 2>&1 || true; rm -f "$cfg"; }
trap cleanup EXIT
scripts/lab down "$p" >/dev/null 2>&1 || true
scripts/lab up "$p" >/dev/null
sleep 1
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
printf '%-18s %5s %12s %14s\n' layout round tcp_mbit small_frames_pps
for r in $(seq 1 "$rounds"); do
    for layout in split run-to-completion; do
        ip netns exec $p-dut "$weir" run -c "$cfg" --threads $layout >/dev/null 2>/tmp/weir-threads.err &
        wpid=$!
        for _ in $(seq 100); do grep -q bridging /tmp/weir-threads.err && break; sleep 0.05; done
        ip netns exec $p-dst timeout 30 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.3
        tcp=$(ip netns exec $p-src timeout 30 iperf3 -c 198.18.0.2 -p 5201 -t 4 -J | json "print(round(d['end']['sum_received']['bits_per_second']/1e6))")
        ip netns exec $p-dst timeout 30 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.3
        pps=$(ip netns exec $p-src timeout 30 iperf3 -c 198.18.0.2 -p 5201 -u -l 18 -b 0 -t 4 -J | json "s=d['end']['sum']; print(round((s['packets']-s['lost_packets'])/s['seconds']))")
        kill -TERM $wpid; wait $wpid || true
        printf '%-18s %5s %12s %14s\n' $layout "$r" "$tcp" "$pps"
    done
done
