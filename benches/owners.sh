#!/usr/bin/env bash
# What the owner rules cost, measured through weir in a lab of its own:
#   benches/owners.sh [FLOWS] [ROUNDS]   (root; builds the release binary)
# A client in the src namespace opens FLOWS UDP sockets one after another (one datagram each,
# 5 ms apart, every one a new flow), under three configs in turns, ROUNDS times:
#   none: no owner rule (the baseline);
#   uid:  `uid 0` (the resolver asks the kernel only: sock_diag);
#   cmd:  `cmd python3` (sock_diag, then the process from /proc).
# Prints per run the resolver's lookup time per new flow (p50, p99, max: from the question
# taken to the answer sent, on the resolver's thread), the owners found, and the frames
# classified before their flow's owner was known. Nothing is written to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
flows=${1:-500}
rounds=${2:-3}
p=weir-own
cargo build --release --quiet
weir=$PWD/target/release/weir
tmp=$(mktemp -d /tmp/weir-owners-XXXX)
cleanup() {
    scripts/lab down "$p" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
scripts/lab down "$p" >/dev/null 2>&1 || true
scripts/lab up "$p" >/dev/null
sleep 1

config() { # rule
    cat <<EOF
(
    lan_networks: ["198.18.0.0/16"],
    processes: (netns: ["/run/netns/$p-src"]),
    ports: (
        wan: (interface: "wan0", rate: "1 Gbit", classes: [
            (name: "owned", match: "$1", rate: "100 Mbit"),
            (name: "rest", match: "default", rate: "100 Mbit"),
        ]),
        lan: (interface: "lan0", rate: "1 Gbit", classes: [(name: "all", match: "default", rate: "50%")]),
    ),
)
EOF
}
config "udp port 9" > "$tmp/none.ron"
config "uid 0" > "$tmp/uid.ron"
config "cmd python3" > "$tmp/cmd.ron"

cat > "$tmp/client.py" <<EOF
import socket, time
for i in range($flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x" * 100, ("198.18.0.2", 5000))
    time.sleep(0.005)
    s.close()
EOF
python=$(python3 -c 'import sys; print(sys.executable)')

printf '%-5s %5s %8s %8s %8s %7s %14s %10s\n' rules round p50_us p99_us max_us found frames_before elapsed_s
for r in $(seq 1 "$rounds"); do
    for kind in none uid cmd; do
        ip netns exec $p-dut "$weir" run -c "$tmp/$kind.ron" --control "$tmp/weir.sock" \
            --pid-file "$tmp/weir.pid" --json >"$tmp/out.json" 2>"$tmp/weir.err" &
        wpid=$!
        for _ in $(seq 200); do grep -q bridging "$tmp/weir.err" && break; sleep 0.05; done
        t0=$(date +%s.%N)
        ip netns exec $p-src "$python" "$tmp/client.py"
        t1=$(date +%s.%N)
        sleep 0.3
        kill -TERM "$wpid"; wait "$wpid" || true
        python3 - "$tmp/out.json" "$kind" "$r" "$t0" "$t1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["owners"]
print("%-5s %5s %8d %8d %8d %7d %14d %10.2f" % (sys.argv[2], sys.argv[3], d["lookup_us_p50"],
      d["lookup_us_p99"], d["lookup_us_max"], d["found"], d["frames_before_owner"],
      float(sys.argv[5]) - float(sys.argv[4])))
EOF
    done
done
