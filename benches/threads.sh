#!/usr/bin/env bash
# The thread layouts of `weir run` (split, run-to-completion, per-direction), measured through
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
cfg=$(mktemp /tmp/weir-threads-XXXX.ron)
cat > "$cfg" <<'RON'
(ports: (
    wan: (interface: "wan0", rate: "100 Gbit", classes: [(name: "all", match: "default", rate: "100 Gbit")]),
    lan: (interface: "lan0", rate: "100 Gbit", classes: [(name: "all", match: "default", rate: "100 Gbit")]),
))
RON
small=$(mktemp /tmp/weir-small-XXXX.pcap)
# 1000 UDP frames of 60 bytes, 198.18.0.1 -> 198.18.0.2, distinct source ports.
python3 - "$small" <<'PY'
import struct, sys
out = open(sys.argv[1], "wb")
out.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
for i in range(1000):
    udp = struct.pack("!HHHH", 10000 + i, 9, 26, 0) + bytes(18)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, i, 0, 64, 17, 0, bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    s = sum(struct.unpack("!10H", ip)); s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~s & 0xffff) + ip[12:]
    eth = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0])
    frame = eth + ip + udp
    out.write(struct.pack("<IIII", 1700000000, i, len(frame), len(frame)) + frame)
PY
cleanup() { scripts/lab down "$p" >/dev/null 2>&1 || true; rm -f "$cfg" "$small"; }
trap cleanup EXIT
scripts/lab down "$p" >/dev/null 2>&1 || true
scripts/lab up "$p" >/dev/null
sleep 1
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
printf '%-18s %5s %10s %11s %14s\n' layout round tcp_mbit tcp4_mbit small_frames_pps
for r in $(seq 1 "$rounds"); do
    for layout in split run-to-completion per-direction; do
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
