#!/usr/bin/env bash
# What the control plane costs, measured through weir in a lab of its own:
#   benches/control.sh [ROUNDS]   (root; builds the release binary; about 30 s per round)
# 1. Forwarding with and without a client asking for `status` ten times a second over one
#    connection (a dashboard polling fast; `weir top` asks once a second), in turns, ROUNDS times:
#    TCP goodput of one iperf3 flow for 4 s, and 60-byte frames per second delivered from
#    `weir send --topspeed`. The config shapes nothing (100 Gbit links).
# 2. 20 reloads alternating a class between 20 and 40 Mbit/s under a TCP flow: the time from
#    the request to the last thread's swap, and the swap itself on the forwarding thread.
# 3. /metrics: how long 50 scrapes take, and the page's size.
# Prints tables; nothing is written to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
p=weir-ctl
cargo build --release --quiet
weir=$PWD/target/release/weir
tmp=$(mktemp -d /tmp/weir-control-XXXX)
small=$tmp/small.pcap
python3 benches/lab/udp_pcap.py "$small"   # 1000 UDP flows of 60-byte frames
sock=$tmp/weir.sock
cleanup() {
    pkill -f "$tmp/poll.py" 2>/dev/null || true
    scripts/lab down "$p" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
scripts/lab down "$p" >/dev/null 2>&1 || true
scripts/lab up "$p" >/dev/null
sleep 1

# A client asking for status every 100 ms on one connection, until killed.
cat > "$tmp/poll.py" <<'EOF'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
while True:
    f.write('{"v":1,"cmd":"status"}\n'); f.flush(); json.loads(f.readline()); time.sleep(0.1)
EOF

start_weir() { # config, extra args...
    local cfg=$1; shift
    ip netns exec $p-dut "$weir" run -c "$cfg" --control "$sock" --pid-file "$tmp/weir.pid" "$@" \
        >/dev/null 2>"$tmp/weir.err" &
    wpid=$!
    for _ in $(seq 200); do grep -q bridging "$tmp/weir.err" && return; sleep 0.05; done
    echo "weir did not start:"; cat "$tmp/weir.err"; exit 1
}
stop_weir() { kill -TERM "$wpid"; wait "$wpid" || true; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

echo "== forwarding with and without a client polling status at 10 Hz"
printf '%-8s %5s %10s %14s\n' poller round tcp_mbit small_frames_pps
for r in $(seq 1 "$rounds"); do
    for poller in off on; do
        start_weir benches/lab/unshaped.ron
        [ $poller = on ] && { python3 "$tmp/poll.py" "$sock" & ppid=$!; }
        ip netns exec $p-dst timeout 30 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
        sleep 0.3
        tcp=$(ip netns exec $p-src timeout 30 iperf3 -c 198.18.0.2 -p 5201 -t 4 -J | json "print(round(d['end']['sum_received']['bits_per_second']/1e6))")
        rx0=$(ip netns exec $p-dst cat /sys/class/net/dst0/statistics/rx_packets)
        sent=$(ip netns exec $p-src "$weir" send "$small" -i src0 --topspeed --loop 300 | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')
        sleep 0.2
        rx1=$(ip netns exec $p-dst cat /sys/class/net/dst0/statistics/rx_packets)
        pps=$(python3 -c "print(round(($rx1 - $rx0) / $sent))")
        [ $poller = on ] && kill "$ppid"
        stop_weir
        printf '%-8s %5s %10s %14s\n' $poller "$r" "$tcp" "$pps"
    done
done

echo "== 20 reloads under a TCP flow"
cfg=$tmp/reload.ron
write_cfg() {
    cat > "$cfg" <<EOF
(ports: (
    wan: (interface: "wan0", rate: "1 Gbit", classes: [
        (name: "tcp", match: "tcp", rate: "$1", ceil: "$1"),
        (name: "rest", match: "default", rate: "10 Mbit")]),
    lan: (interface: "lan0", rate: "1 Gbit", classes: [(name: "all", match: "default", rate: "1 Gbit")]),
))
EOF
}
write_cfg "20 Mbit"
start_weir "$cfg"
ip netns exec $p-dst timeout 30 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
sleep 0.3
ip netns exec $p-src timeout 30 iperf3 -c 198.18.0.2 -p 5201 -t 14 >/dev/null &
cpid=$!
sleep 2
for i in $(seq 1 20); do
    if [ $((i % 2)) = 1 ]; then write_cfg "40 Mbit"; else write_cfg "20 Mbit"; fi
    "$weir" reload --control "$sock" --json | json "print(d['total_ms'], d['swap_us'], d['frames']['kept'], d['frames']['dropped'])"
    sleep 0.5
done > "$tmp/reloads.txt"
python3 - "$tmp/reloads.txt" <<'EOF'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
total = sorted(r[0] for r in rows); swap = sorted(r[1] for r in rows)
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
print(f"request to last swap: median {q(total,.5):.2f} ms, max {total[-1]:.2f} ms")
print(f"swap on the forwarding thread: median {q(swap,.5):.0f} us, max {swap[-1]:.0f} us")
print(f"frames queued at the swaps: {sum(r[2] for r in rows):.0f} kept, {sum(r[3] for r in rows):.0f} dropped")
EOF
wait "$cpid" || true
stop_weir

echo "== /metrics"
start_weir benches/lab/unshaped.ron --metrics 127.0.0.1:9840
ip netns exec $p-src ping -c 20 -i 0.05 -q 198.18.0.2 >/dev/null || true
sleep 0.3
times=$(for _ in $(seq 50); do ip netns exec $p-dut curl -s -o "$tmp/m.txt" -w '%{time_total}\n' http://127.0.0.1:9840/metrics; done)
python3 - "$tmp/m.txt" <<EOF
import sys
t = sorted(float(x) * 1e3 for x in """$times""".split())
body = open(sys.argv[1]).read()
print(f"50 scrapes: median {t[len(t)//2]:.2f} ms, max {t[-1]:.2f} ms; {len(body)} bytes, {sum(1 for l in body.splitlines() if not l.startswith('#'))} samples")
EOF
stop_weir
