#!/usr/bin/env bash
# weir vs the Linux kernel, in a lab of its own (prefix weir-cmp).
#   benches/compare.sh [--quick] [--only PART]...   (root; builds target/release/weir)
# PART: main (the rows below, --quick: ~4-5 min), equal-cpu (the same single CPU for the kernel
# and weir, ~4 min, with the overload row and the NAPI variant), overload (that row alone: priority under CPU
# overload, ~1.5 min), workers (weir --workers 1 and 2 beside the bridge on both CPUs, ~2 min);
# all of them when no --only is given. EC_TRACE=1: capture the overload row's pings at each hop
# (target/compare/trace/, benches/lab/ping_hops.py); EC_OVERLOAD_WEIRS="name:express:priority
# ...": the weir variants of that row.
# Devices under test, each in weir-cmp-dut between lan0 and wan0:
#   bridge      Linux bridge br0 (lan0 + wan0), no qdisc (veth: noqueue)
#   bridge-htb  the same bridge + HTB on wan0 (shaping and latency rows only)
#   weir-afp    weir run (default backend, af_packet, default receive mode: the TPACKET_V2 ring)
#   weir-mmsg   weir run --rx mmsg (af_packet receiving with recvmmsg)
#   weir-pnet   weir run --io pnet (no TCP rows: pnet needs the endpoints' offloads off and there is
#               no ethtool binary here to turn them off)
# Prints one table (kernel, then each weir device and its ratio to the kernel), writes every
# raw number and every ping RTT to target/compare/results-DATE.json, and plots the latency-under-load
# RTTs to target/compare/latency-DATE.svg (benches/plot_latency.py). See docs/compare.md.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 only=""
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --only) only="$only ${2:?--only needs main, equal-cpu, overload or workers}"; shift ;;
        *) echo "compare.sh: unknown argument $1 (--quick, --only PART)" >&2; exit 2 ;;
    esac
    shift
done
want() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }
[ "$(id -u)" = 0 ] || { echo "compare.sh: needs root" >&2; exit 2; }

if [ $quick = 1 ]; then T=3; LOOPS=300; RATES="10M 100M 1G 5G"; else T=5; LOOPS=1000; RATES="10M 100M 1G 5G"; fi
p=weir-cmp
SRC="ip netns exec $p-src" DUT="ip netns exec $p-dut" DST="ip netns exec $p-dst"

timeout 600 cargo build --release --quiet
weir=$PWD/target/release/weir
tmp=$(mktemp -d /tmp/weir-cmp-XXXX)
res=$tmp/results.tsv        # lines: dut<TAB>metric<TAB>value
smp=$tmp/samples.tsv        # lines: dut<TAB>run (idle, load_prio, load_bulk)<TAB>JSON list of RTTs
: > "$res"; : > "$smp"
wtpid=""
cleanup() {
    [ -n "$wtpid" ] && kill -TERM "$wtpid" 2>/dev/null || true
    scripts/lab down "$p" >/dev/null 2>&1 || true
    [ -n "${prequeue:-}" ] && sysctl -qw net.core.netdev_tstamp_prequeue="$prequeue"
    rm -rf "$tmp"
}
if [ -n "${EC_TRACE:-}" ]; then
    # Incoming frames stamped when CPU 1 takes them from its backlog, not when queued there
    # (benches/lab/ping_hops.py); the setting is global and is put back at exit.
    prequeue=$(sysctl -n net.core.netdev_tstamp_prequeue)
    sysctl -qw net.core.netdev_tstamp_prequeue=0
fi
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- traffic: 1000 UDP frames of 60 bytes each way (64 on the wire with FCS), and 1514-byte
# frames for the UDP load of the latency-under-load test ---
python3 benches/lab/udp_pcap.py "$tmp/fwd.pcap"
python3 benches/lab/udp_pcap.py "$tmp/rev.pcap" --reverse
python3 benches/lab/udp_pcap.py "$tmp/big.pcap" --payload 1472
python3 benches/lab/udp_pcap.py "$tmp/big1.pcap" --payload 1472 --flows 1

# --- weir configs ---
# unshaped: benches/lab/unshaped.ron; shaped: shape_cfg; latency under load: benches/lab/latency.ron
shape_cfg() { # $1 = rate, e.g. "100 Mbit": one class `tcp` rate=ceil=R on a 10 Gbit wan link
    cat > "$tmp/shape.ron" <<RON
(ports: (
    wan: (interface: "wan0", rate: "10 Gbit", classes: [(name: "tcp", match: "default", rate: "$1", ceil: "$1")]),
    lan: (interface: "lan0", rate: "10 Gbit", classes: [(name: "all", match: "default", rate: "10 Gbit")]),
))
RON
}

# --- helpers ---
put() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$res"; }
put_samples() { printf '%s\t%s\t%s\n' "$1" "$2" "$(cat "$3" 2>/dev/null)" >> "$smp"; } # $3: ping_stats' file
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
rxp() { timeout 5 ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }

lab_up() {
    timeout 20 scripts/lab down "$p" >/dev/null 2>&1 || true
    timeout 20 scripts/lab up "$p" >/dev/null
    sleep 0.5
}
bridge_up() {
    timeout 5 $DUT ip link add br0 type bridge
    timeout 5 $DUT ip link set lan0 master br0
    timeout 5 $DUT ip link set wan0 master br0
    timeout 5 $DUT ip link set br0 up
    sleep 2   # let the bridge ports reach forwarding (STP off, forward delay does not apply)
}
weir_start() { # $1 = config, $2... = extra args
    local cfg=$1; shift
    : > "$tmp/weir.err"
    # shellcheck disable=SC2086
    timeout 900 ip netns exec $p-dut ${WPIN:-} "$weir" run -c "$cfg" "$@" >"$tmp/weir.out" 2>"$tmp/weir.err" &
    wtpid=$!
    for _ in $(seq 100); do grep -q bridging "$tmp/weir.err" && break; sleep 0.05; done
    grep -q bridging "$tmp/weir.err" || { cat "$tmp/weir.err" >&2; echo "weir did not start" >&2; exit 1; }
    wpid=$(pgrep -P "$wtpid" | head -1)
}
weir_stop() {
    kill -TERM "$wtpid" 2>/dev/null || true
    wait "$wtpid" 2>/dev/null || true
    wtpid=""
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# ping summary -> "p50 p99 max loss" (ms, ms, ms, fraction); nearest-rank percentiles of the replies.
# Every sample goes to file $1 as a JSON list in icmp_seq order: RTT in ms, null for no reply.
ping_stats() { # $1 = samples file, $2 = count, then ping args
    local f=$1 n=$2; shift 2
    rm -f "$f"   # no stale samples from an earlier run if python fails
    timeout 60 $SRC ping -n -c "$n" -i 0.02 -W 1 "$@" 198.18.0.2 2>/dev/null | python3 -c "
import sys, re, math, json
n, text = $n, sys.stdin.read()
rtt = sorted(float(m.group(1)) for m in re.finditer(r'time=([0-9.]+) ms', text))
def pct(q): return rtt[max(0, math.ceil(q * len(rtt)) - 1)] if rtt else float('nan')
seq = [None] * n   # first reply per icmp_seq (1..n); duplicates are ignored here
for m in re.finditer(r'icmp_seq=([0-9]+) .*?time=([0-9.]+) ms', text):
    i = int(m.group(1)) - 1
    if 0 <= i < n and seq[i] is None: seq[i] = float(m.group(2))
json.dump(seq, open(sys.argv[1], 'w'))
print(f'{pct(.5):.3f} {pct(.99):.3f} {max(rtt) if rtt else float(\"nan\"):.3f} {1 - len(rtt) / n:.3f}')" "$f"
}

tcp_bps() { # $1 = parallel flows, $2 = seconds -> receiver bits/s
    timeout $(($2 + 20)) $DST iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local sp=$!
    sleep 0.3
    timeout $(($2 + 15)) $SRC iperf3 -c 198.18.0.2 -p 5201 -t "$2" -P "$1" -J 2>/dev/null |
        python3 -c "import json,sys; print(json.load(sys.stdin)['end']['sum_received']['bits_per_second'])" || echo nan
    wait $sp 2>/dev/null || true
}

pps_tests() { # $1 = dut name, $2 = weir pid or ""
    local d=$1 w=${2:-} c0 c1 r0 r1 t
    # one direction: src -> dst
    [ -n "$w" ] && c0=$(cpu_ticks "$w")
    r0=$(rxp $p-dst dst0)
    t=$(timeout 120 $SRC "$weir" send "$tmp/fwd.pcap" -i src0 --topspeed --loop "$LOOPS" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')
    sleep 0.3
    r1=$(rxp $p-dst dst0)
    [ -n "$w" ] && c1=$(cpu_ticks "$w")
    put "$d" pps_1dir "$(python3 -c "print(($r1 - $r0) / $t)")"
    put "$d" pps_1dir_delivered "$(python3 -c "print(($r1 - $r0) / ($LOOPS * 1000))")"
    if [ -n "$w" ]; then
        put "$d" cpu_s_per_mframe "$(python3 -c "import os; print((($c1 - $c0) / os.sysconf('SC_CLK_TCK')) / (($r1 - $r0) / 1e6))")"
    fi
    put "$d" pps_2dir "$(both_ways | cut -d' ' -f1)"
}

both_ways() { # 64-byte frames both ways at once at top speed -> "frames/s delivered-fraction"
    local r0 r1 s0 s1 ta tb pa pb
    r0=$(rxp $p-dst dst0); s0=$(rxp $p-src src0)
    timeout 120 $SRC "$weir" send "$tmp/fwd.pcap" -i src0 --topspeed --loop "$LOOPS" > "$tmp/sa" &
    pa=$!
    timeout 120 $DST "$weir" send "$tmp/rev.pcap" -i dst0 --topspeed --loop "$LOOPS" > "$tmp/sb" &
    pb=$!
    wait $pa $pb || true
    sleep 0.3
    r1=$(rxp $p-dst dst0); s1=$(rxp $p-src src0)
    ta=$(grep -o 'in [0-9.]* s' "$tmp/sa" | grep -o '[0-9.]*'); tb=$(grep -o 'in [0-9.]* s' "$tmp/sb" | grep -o '[0-9.]*')
    python3 -c "n = $r1 - $r0 + $s1 - $s0; print(n / max($ta, $tb), n / (2 * $LOOPS * 1000))"
}

idle_and_tcp() { # $1 = dut, $2 = 1 to run TCP rows
    local s
    s=$(ping_stats "$tmp/s_idle" 50)
    put "$1" idle_rtt_p50_ms "$(echo "$s" | cut -d' ' -f1)"
    put "$1" idle_rtt_p99_ms "$(echo "$s" | cut -d' ' -f2)"
    put_samples "$1" idle "$tmp/s_idle"
    if [ "$2" = 1 ]; then
        put "$1" tcp_1flow_bps "$(tcp_bps 1 "$T")"
        put "$1" tcp_4flow_bps "$(tcp_bps 4 "$T")"
    fi
}

shaping_one() { # $1 = dut, $2 = rate label (10M...) ; shaper already in place
    local g
    for flows in 1 8; do
        g=$(tcp_bps $flows "$T")
        put "$1" "shape_${2}_${flows}flow_goodput_bps" "$g"
    done
}

latency_load() { # $1 = dut; shaper already in place
    # Unresponsive UDP load: 1514-byte frames at 200 Mbit/s of frame bytes (2x the 100 Mbit link)
    # for ~8 s, sent by `weir send` (not iperf3: its TCP control connection cannot cross weir-pnet
    # with the endpoints' offloads on).
    local b0 b1 t0 t1
    b0=$(timeout 5 $DST cat /sys/class/net/dst0/statistics/rx_bytes); t0=$(date +%s.%N)
    timeout 30 $SRC "$weir" send "$tmp/big.pcap" -i src0 --mbps 200 --loop 132 >/dev/null 2>&1 &
    local cp=$!
    sleep 1
    ping_stats "$tmp/s_prio" 100 -Q 0xb8 > "$tmp/lp" &
    local pp=$!
    ping_stats "$tmp/s_bulk" 100 > "$tmp/lb"
    wait $pp || true
    wait $cp || true
    sleep 0.2
    b1=$(timeout 5 $DST cat /sys/class/net/dst0/statistics/rx_bytes); t1=$(date +%s.%N)
    # frame bytes received by dst0 (UDP load + pings) per second over the load
    put "$1" load_dst_rx_bps "$(python3 -c "print(($b1 - $b0) * 8 / ($t1 - $t0))")"
    local k v
    for k in prio bulk; do
        [ $k = prio ] && v=$(cat "$tmp/lp") || v=$(cat "$tmp/lb")
        put "$1" "load_${k}_rtt_p50_ms" "$(echo "$v" | cut -d' ' -f1)"
        put "$1" "load_${k}_rtt_p99_ms" "$(echo "$v" | cut -d' ' -f2)"
        put "$1" "load_${k}_rtt_max_ms" "$(echo "$v" | cut -d' ' -f3)"
        put "$1" "load_${k}_loss" "$(echo "$v" | cut -d' ' -f4)"
        put_samples "$1" "load_$k" "$tmp/s_$k"
    done
}

latency_sparse() { # $1 = dut; shaper already in place
    # A sparse flow beside a fat one: the same 2x load as latency_load but from ONE flow, and a
    # ping every 20 ms in the bulk class with it (39 kbit/s, far below its half of the class).
    # Per-flow queueing serves the ping ahead of the flood; a FIFO makes it wait behind it.
    timeout 30 $SRC "$weir" send "$tmp/big1.pcap" -i src0 --mbps 200 --loop 132 >/dev/null 2>&1 &
    local cp=$!
    sleep 1
    local v
    v=$(ping_stats "$tmp/s_sparse" 250)
    wait $cp || true
    put "$1" sparse_bulk_rtt_p50_ms "$(echo "$v" | cut -d' ' -f1)"
    put "$1" sparse_bulk_rtt_p99_ms "$(echo "$v" | cut -d' ' -f2)"
    put "$1" sparse_bulk_rtt_max_ms "$(echo "$v" | cut -d' ' -f3)"
    put "$1" sparse_bulk_loss "$(echo "$v" | cut -d' ' -f4)"
    put_samples "$1" sparse_bulk "$tmp/s_sparse"
}

ratestr() { case $1 in *M) echo "${1%M} Mbit" ;; *G) echo "${1%G} Gbit" ;; esac; }
ratetc() { case $1 in *M) echo "${1%M}mbit" ;; *G) echo "${1%G}gbit" ;; esac; }
TC() { timeout 5 $DUT tc "$@"; }

# ================= runs =================
log "uptime before: $(uptime)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

if want main; then
    log "bridge"
    lab_up; bridge_up
    idle_and_tcp bridge 1
    pps_tests bridge ""

    log "bridge-htb: shaping"
    for r in $RATES; do
        TC qdisc replace dev wan0 root handle 1: htb default 10
        TC class add dev wan0 parent 1: classid 1:10 htb rate "$(ratetc "$r")" ceil "$(ratetc "$r")"
        shaping_one bridge-htb "$r"
        TC qdisc del dev wan0 root
    done
    log "bridge-htb: latency under load"
    TC qdisc replace dev wan0 root handle 1: htb default 20
    TC class add dev wan0 parent 1: classid 1:100 htb rate 100mbit ceil 100mbit
    TC class add dev wan0 parent 1:100 classid 1:1 htb rate 10mbit ceil 100mbit prio 0
    TC class add dev wan0 parent 1:100 classid 1:20 htb rate 90mbit ceil 100mbit prio 1
    TC filter add dev wan0 parent 1: protocol ip u32 match ip tos 0xb8 0xfc flowid 1:1
    latency_load bridge-htb
    latency_sparse bridge-htb
    TC qdisc del dev wan0 root

    for be in afp mmsg pnet; do
        d=weir-$be
        io="--io af-packet"; [ $be = mmsg ] && io="--io af-packet --rx mmsg"; [ $be = pnet ] && io="--io pnet"
        tcp=1; [ $be = pnet ] && tcp=0
        log "$d: forwarding"
        lab_up
        # shellcheck disable=SC2086
        weir_start benches/lab/unshaped.ron $io
        idle_and_tcp $d $tcp
        pps_tests $d "$wpid"
        put $d peak_rss_kb "$(hwm_kb "$wpid")"
        weir_stop
        # Where frames went over these tests, from weir's final counters (stdout): received by
        # weir, dropped by weir, and dropped by the kernel at weir's sockets before weir could take
        # them (pnet's device has no such counter).
        put $d weir_rx_fwd "$(awk '/^port .*: received/ {s += $4} END {print s + 0}' "$tmp/weir.out")"
        put $d weir_drops_fwd "$(awk '/^port .*: received/ {s += $10} END {print s + 0}' "$tmp/weir.out")"
        [ $be != pnet ] && put $d kernel_drops_fwd "$(grep -o 'kernel dropped [0-9]*' "$tmp/weir.out" | awk '{s += $3} END {print s + 0}')"
        if [ $tcp = 1 ]; then
            log "$d: shaping"
            for r in $RATES; do
                shape_cfg "$(ratestr "$r")"
                # shellcheck disable=SC2086
                weir_start "$tmp/shape.ron" $io
                shaping_one $d "$r"
                weir_stop
            done
        fi
        log "$d: latency under load"
        # shellcheck disable=SC2086
        weir_start benches/lab/latency.ron $io
        latency_load $d
        latency_sparse $d
        weir_stop
    done
fi

# --- the same single CPU for the kernel and for weir (docs/benchmarks.md, Equal CPU) ---
# The device under test gets CPU 1: the receive work of lan0 and wan0 is steered there by RPS
# (for the bridge that is all its work; for weir, the kernel's part), weir is pinned there. The
# endpoints get CPU 0: their processes (senders, receivers, ping) by taskset, the receive work
# of src0 and dst0 by RPS. (A cost of this lab: each frame weir sends into dst0 costs CPU 1 an
# IPI to CPU 0, a VM exit here, where the bridge, sending from its softirq, pays one per batch;
# docs/benchmarks.md gives the profile.) Offloads are off on all four interfaces, so both
# forward MTU-sized frames, not GSO super-frames. The cost rows are then measured a second
# time in a variant of the lab (ecn_*, "NAPI"): no RPS, each veth's receive work in a NAPI
# thread pinned to its side's CPU (veth has NAPI with GRO on; GRO does not merge these UDP
# frames), as a NIC with threaded NAPI has it.
ECSRC="ip netns exec $p-src taskset -c 0" ECDST="ip netns exec $p-dst taskset -c 0"
ec_lab() { # $1 = rps (default) or napi
    lab_up
    local x ns dev cpus t
    for x in src:src0:1 dst:dst0:1 dut:lan0:2 dut:wan0:2; do
        IFS=: read -r ns dev cpus <<< "$x"
        timeout 5 ip netns exec "$p-$ns" python3 benches/lab/offloads.py "$dev" off
        if [ "${1:-rps}" = napi ]; then
            # Each veth's receive work in a NAPI thread of its own on its side's CPU, as a NIC
            # with threaded NAPI would have it (veth has NAPI when GRO is on); no RPS.
            timeout 5 ip netns exec "$p-$ns" python3 benches/lab/offloads.py "$dev" on gro
            timeout 5 ip netns exec "$p-$ns" sh -c "echo 1 > /sys/class/net/$dev/threaded"
            for t in $(pgrep "^napi/$dev-"); do taskset -pc $(( cpus - 1 )) "$t" >/dev/null; done
        else
            timeout 5 ip netns exec "$p-$ns" sh -c "echo $cpus > /sys/class/net/$dev/queues/rx-0/rps_cpus"
        fi
    done
}
# CPU 1's receive backlog: frames dropped because it was full, and times its softirq ran out of
# budget or time with work left (the rest then waits for the next softirq run or ksoftirqd/1)
cpu1_softnet() { local l; l=($(sed -n 2p /proc/net/softnet_stat)); echo $((16#${l[1]})) $((16#${l[2]})); }
ksoftirqd1_s() { # CPU seconds of ksoftirqd/1 so far
    awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$(pgrep -x ksoftirqd/1)/stat"
}
# Function-call IPIs (RPS hands a CPU's backlog to it with one; a VM exit here) received by
# CPU 0 and CPU 1 so far, and rescheduling IPIs (a wake-up of a thread on the other CPU)
ipis() { awk '$1 == "CAL:" || $1 == "RES:" {c0 += $2; c1 += $3} END {print c0, c1}' /proc/interrupts; }
# CPU 1's busy seconds as a running count (differences are what matter): wall time less its
# idle, iowait and steal time. Not the sum of the busy fields: those are sampled at the timer
# tick, which misses short softirq runs on a mostly idle CPU (the bridge at 100k frames/s read
# 0.05 to 7.6 us per frame that way); idle time is measured exactly (NO_HZ).
cpu1_busy() {
    awk -v t="$(date +%s.%N)" -v hz="$(getconf CLK_TCK)" \
        '$1 == "cpu1" {printf "%.4f\n", t - ($5 + $6 + $9) / hz}' /proc/stat
}
overload_cfg() { # the latency-under-load classes at 1 Gbit/s
    cat > "$tmp/overload.ron" <<'RON'
(ports: (
    wan: (interface: "wan0", rate: "1 Gbit", classes: [
        (name: "prio", match: "dscp ef", priority: 0, rate: "100 Mbit", ceil: "1 Gbit"),
        (name: "bulk", match: "default", priority: 4, rate: "900 Mbit", ceil: "1 Gbit"),
    ]),
    lan: (interface: "lan0", rate: "10 Gbit", classes: [(name: "all", match: "default", rate: "10 Gbit")]),
))
RON
}
ec_tcp() { # $1 = dut, $2 = flows, $3 = prefix -> rows PREFIX_tcp_Nflow_bps, PREFIX_tcp_Nflow_retransmits
    timeout $((T + 20)) $ECDST iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local sp=$! j
    sleep 0.3
    j=$(timeout $((T + 15)) $ECSRC iperf3 -c 198.18.0.2 -p 5201 -t "$T" -P "$2" -J 2>/dev/null || true)
    wait $sp 2>/dev/null || true
    put "$1" "${3}_tcp_${2}flow_bps" "$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['end']['sum_received']['bits_per_second'])" 2>/dev/null || echo nan)"
    put "$1" "${3}_tcp_${2}flow_retransmits" "$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['end']['sum_sent']['retransmits'])" 2>/dev/null || echo nan)"
}
ec_rows() { # $1 = dut, $2 = row prefix (ec: RPS lab, ecn: threaded NAPI); the device is up on CPU 1
    local d=$1 x=$2 r0 r1 c0 c1 t i0 i1
    # 64-byte frames one way at top speed from CPU 0: frames delivered per second, per second
    # of CPU 1's busy time, and the IPIs each CPU took per frame
    r0=$(rxp $p-dst dst0); c0=$(cpu1_busy); i0=$(ipis)
    t=$(timeout 120 $ECSRC "$weir" send "$tmp/fwd.pcap" -i src0 --topspeed --loop "$LOOPS" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')
    sleep 0.3
    r1=$(rxp $p-dst dst0); c1=$(cpu1_busy); i1=$(ipis)
    put "$d" "${x}_ipis_to_cpu1_per_frame" "$(python3 -c "print((${i1#* } - ${i0#* }) / max(1, $r1 - $r0))")"
    put "$d" "${x}_ipis_to_cpu0_per_frame" "$(python3 -c "print((${i1% *} - ${i0% *}) / max(1, $r1 - $r0))")"
    put "$d" "${x}_pps_1dir" "$(python3 -c "print(($r1 - $r0) / $t)")"
    put "$d" "${x}_pps_1dir_delivered" "$(python3 -c "print(($r1 - $r0) / ($LOOPS * 1000))")"
    put "$d" "${x}_frames_per_cpu1_s" "$(python3 -c "print(($r1 - $r0) / max(1e-9, $c1 - $c0))")"
    # The highest offered rate (steps of 50k frames/s, 2 s each) delivered whole (>= 99.9%): past
    # it, the receive work of frames that will be dropped takes the CPU (docs/benchmarks.md).
    # Not in the NAPI lab: there the endpoints' NAPI threads share CPU 0 with the sender, and
    # neither device got 100k frames/s across whole.
    if [ "$x" = ec ]; then
        local pps best=0 n
        for pps in 100000 150000 200000 250000 300000 350000 400000 500000 600000 800000; do
            n=$((pps * 2 / 1000))
            r0=$(rxp $p-dst dst0); c0=$(cpu1_busy)
            timeout 30 $ECSRC "$weir" send "$tmp/fwd.pcap" -i src0 --pps "$pps" --loop "$n" >/dev/null 2>&1
            sleep 0.3
            r1=$(rxp $p-dst dst0); c1=$(cpu1_busy)
            # The cost per frame where both keep up, without the receive livelock of top
            # speed: CPU 1's busy time per frame delivered at 100k frames/s.
            [ "$pps" = 100000 ] && put "$d" ec_cpu1_us_per_frame_100k \
                "$(python3 -c "print(($c1 - $c0) * 1e6 / max(1, $r1 - $r0))")"
            python3 -c "import sys; sys.exit(0 if ($r1 - $r0) >= 0.999 * $n * 1000 else 1)" || break
            best=$pps
        done
        put "$d" ec_lossfree_pps "$best"
    fi
    ec_tcp "$d" 1 "$x"
    ec_tcp "$d" 4 "$x"
}
ec_overload() { # $1 = dut; the 1 Gbit/s shaper is in place. A 2 Gbit/s unresponsive flood of
    # 1514-byte frames (1000 flows) from CPU 0 for ~8 s, DSCP EF pings (the prio class) and
    # plain pings (bulk) beside it; the offered rate is what src0 sent.
    local d=$1 b0 b1 t0 t1 x0 x1 k v n0 n1 q0 q1 k0
    local tps="" x ns dev
    if [ -n "${EC_TRACE:-}" ]; then # the pings at each hop (benches/lab/ping_hops.py)
        mkdir -p target/compare/trace
        for x in src:src0 dut:lan0 dut:wan0 dst:dst0; do
            IFS=: read -r ns dev <<< "$x"
            timeout 40 ip netns exec "$p-$ns" taskset -c 0 dumpcap -q -i "$dev" -s 100 -f icmp \
                -w "target/compare/trace/$d-$dev.pcapng" 2>/dev/null &
            tps="$tps $!"
        done
        [ "$EC_TRACE" = sched ] && { timeout 30 perf record -q -g -e sched:sched_switch -C 1 -o "target/compare/trace/$d-sched.data" -- sleep 8 >/dev/null 2>&1 & tps="$tps $!"; }
        sleep 1
    fi
    x0=$(timeout 5 $SRC cat /sys/class/net/src0/statistics/tx_bytes)
    read -r n0 q0 <<< "$(cpu1_softnet)"; k0=$(ksoftirqd1_s)
    b0=$(timeout 5 $DST cat /sys/class/net/dst0/statistics/rx_bytes); t0=$(date +%s.%N)
    timeout 30 $ECSRC "$weir" send "$tmp/big.pcap" -i src0 --mbps 2000 --loop 1320 >/dev/null 2>&1 &
    local cp=$!
    sleep 1
    SRC=$ECSRC ping_stats "$tmp/s_oprio" 300 -Q 0xb8 > "$tmp/op" &
    local pp=$!
    SRC=$ECSRC ping_stats "$tmp/s_obulk" 300 > "$tmp/ob"
    wait $pp || true
    wait $cp || true
    sleep 0.2
    x1=$(timeout 5 $SRC cat /sys/class/net/src0/statistics/tx_bytes)
    b1=$(timeout 5 $DST cat /sys/class/net/dst0/statistics/rx_bytes); t1=$(date +%s.%N)
    read -r n1 q1 <<< "$(cpu1_softnet)"
    if [ -n "$tps" ]; then
        sleep 0.5; kill -INT $tps 2>/dev/null || true; wait $tps || true
        python3 benches/lab/ping_hops.py target/compare/trace "$d" >&2 || true
    fi
    put "$d" ec_overload_backlog_drops $((n1 - n0))
    put "$d" ec_overload_time_squeeze $((q1 - q0))
    put "$d" ec_overload_ksoftirqd_s "$(python3 -c "print($(ksoftirqd1_s) - $k0)")"
    put "$d" ec_overload_offered_bps "$(python3 -c "print(($x1 - $x0) * 8 / ($t1 - $t0))")"
    put "$d" ec_overload_dst_rx_bps "$(python3 -c "print(($b1 - $b0) * 8 / ($t1 - $t0))")"
    for k in prio bulk; do
        [ $k = prio ] && v=$(cat "$tmp/op") || v=$(cat "$tmp/ob")
        put "$d" "ec_overload_${k}_rtt_p50_ms" "$(echo "$v" | cut -d' ' -f1)"
        put "$d" "ec_overload_${k}_rtt_p99_ms" "$(echo "$v" | cut -d' ' -f2)"
        put "$d" "ec_overload_${k}_loss" "$(echo "$v" | cut -d' ' -f4)"
        put_samples "$d" "ec_overload_$k" "$tmp/s_o$k"
    done
}

if want equal-cpu || want overload; then
    # This script and everything it starts (python, timeout, cat...) stay off CPU 1 too: a
    # weir that has left real time when saturated (nice -10) otherwise waits out their time
    # slices, up to ~6 ms seen (perf sched_switch on CPU 1); the bridge, in softirq, does not.
    taskset -pc 0 $$ >/dev/null
    log "equal CPU: bridge"
    ec_lab; bridge_up
    want equal-cpu && ec_rows bridge ec
    TC qdisc replace dev wan0 root handle 1: htb default 20
    TC class add dev wan0 parent 1: classid 1:100 htb rate 1gbit ceil 1gbit
    TC class add dev wan0 parent 1:100 classid 1:1 htb rate 100mbit ceil 1gbit prio 0
    TC class add dev wan0 parent 1:100 classid 1:20 htb rate 900mbit ceil 1gbit prio 1
    TC filter add dev wan0 parent 1: protocol ip u32 match ip tos 0xb8 0xfc flowid 1:1
    ec_overload bridge-htb
    TC qdisc del dev wan0 root
    overload_cfg
    ec_lab
    if want equal-cpu; then
        log "equal CPU: weir (af_packet, default receive mode)"
        WPIN="taskset -c 1" weir_start benches/lab/unshaped.ron
        ec_rows weir-afp ec
        weir_stop
        mkdir -p target/compare && cp "$tmp/weir.err" target/compare/ec-weir-afp.err
    fi
    # The same with one receiving socket per port (no express lane: how weir was before it),
    # and with the forwarding thread at nice -10 instead of real-time (`--priority high`).
    for x in ${EC_OVERLOAD_WEIRS:-weir-afp:auto:realtime weir-noexpress:off:realtime weir-high:auto:high}; do
        IFS=: read -r d e pr <<< "$x"
        WPIN="taskset -c 1" weir_start "$tmp/overload.ron" --express "$e" --priority "$pr"
        ec_overload "$d"
        weir_stop
        put "$d" ec_overload_kernel_drops "$(grep -o 'kernel dropped [0-9]*' "$tmp/weir.out" | awk '{s += $3} END {print s + 0}')"
        mkdir -p target/compare && cp "$tmp/weir.out" "target/compare/overload-$d.out" # its final table
    done
    if want equal-cpu; then
        # The cost rows again, each veth's receive work in a NAPI thread of its own instead of
        # RPS (lan0's and wan0's on CPU 1, src0's and dst0's on CPU 0): frames arrive in
        # batches, as from a NIC, not with an IPI each (docs/benchmarks.md).
        log "equal CPU, threaded NAPI: bridge"
        ec_lab napi; bridge_up
        ec_rows bridge ecn
        log "equal CPU, threaded NAPI: weir"
        ec_lab napi
        WPIN="taskset -c 1" weir_start benches/lab/unshaped.ron
        ec_rows weir-afp ecn
        weir_stop
        cp "$tmp/weir.err" target/compare/ecn-weir-afp.err # whether it left real time
    fi
fi
taskset -pc "0-$(($(nproc --all) - 1))" $$ >/dev/null # (plain nproc counts only CPU 0 now)
# --- workers: weir --workers 1 and 2 beside the bridge, both CPUs free (nothing pinned) ---
wk_rows() { # $1 = dut
    local d=$1 b
    put "$d" wk_tcp_4flow_bps "$(tcp_bps 4 "$T")"
    b=$(both_ways)
    put "$d" wk_pps_2dir "${b%% *}"
    put "$d" wk_pps_2dir_delivered "${b#* }"
}
if want workers; then
    log "workers: bridge"
    lab_up; bridge_up
    wk_rows bridge
    for n in 1 2; do
        log "workers: weir --workers $n"
        lab_up
        weir_start benches/lab/unshaped.ron --workers "$n"
        wk_rows "weir-w$n"
        weir_stop
    done
fi

log "uptime after: $(uptime)"

mkdir -p target/compare
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=target/compare/results-$stamp.json
python3 - "$res" "$out" "$quick" "$RATES" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" "$smp" <<'PY'
import sys, json, math, os, platform, datetime
res, out, quick, rates, lb, la, smp = sys.argv[1:8]
samples = {}   # dut -> run -> [RTT ms or None per ping, in icmp_seq order]
for line in open(smp):
    d, run, v = line.rstrip("\n").split("\t")
    samples.setdefault(d, {})[run] = json.loads(v) if v else None
data = {}
for line in open(res):
    d, m, v = line.rstrip("\n").split("\t")
    try: v = float(v)
    except ValueError: v = None
    if v is not None and math.isnan(v): v = None
    data.setdefault(d, {})[m] = v
RATE = {"10M": 10e6, "100M": 100e6, "1G": 1e9, "5G": 5e9}
WIRE = 1538 / 1448  # full-size TCP segment: 1448 B payload, 1514 B frame + 24 B preamble/FCS/gap
for d, m in data.items():
    for r in rates.split():
        for f in (1, 8):
            g = m.get(f"shape_{r}_{f}flow_goodput_bps")
            if g is not None:
                m[f"shape_{r}_{f}flow_wire_over_rate"] = g * WIRE / RATE[r]
# rows: (label, metric, kernel device, unit scale, format)
rows = [
    ("idle RTT p50 (ms)", "idle_rtt_p50_ms", "bridge", 1, "{:.3f}"),
    ("idle RTT p99 (ms)", "idle_rtt_p99_ms", "bridge", 1, "{:.3f}"),
    ("TCP 1 flow (Gbit/s)", "tcp_1flow_bps", "bridge", 1e-9, "{:.2f}"),
    ("TCP 4 flows (Gbit/s)", "tcp_4flow_bps", "bridge", 1e-9, "{:.2f}"),
    ("64B frames/s, 1 dir (kpps)", "pps_1dir", "bridge", 1e-3, "{:.0f}"),
    ("64B delivered fraction, 1 dir", "pps_1dir_delivered", "bridge", 1, "{:.3f}"),
    ("64B frames/s, 2 dirs (kpps)", "pps_2dir", "bridge", 1e-3, "{:.0f}"),
]
for r in rates.split():
    for f in (1, 8):
        rows.append((f"shaping {r}, {f} flow{'s' if f > 1 else ''}: wire/rate", f"shape_{r}_{f}flow_wire_over_rate", "bridge-htb", 1, "{:.3f}"))
for k in ("prio", "bulk"):
    for s in ("p50", "p99", "max"):
        rows.append((f"under load, {k} RTT {s} (ms)", f"load_{k}_rtt_{s}_ms", "bridge-htb", 1, "{:.2f}"))
    rows.append((f"under load, {k} ping loss", f"load_{k}_loss", "bridge-htb", 1, "{:.2f}"))
rows.append(("under load, dst0 rx (Mbit/s, frame bytes)", "load_dst_rx_bps", "bridge-htb", 1e-6, "{:.1f}"))
for s in ("p50", "p99", "max"):
    rows.append((f"beside a 1-flow load, bulk RTT {s} (ms)", f"sparse_bulk_rtt_{s}_ms", "bridge-htb", 1, "{:.2f}"))
rows.append(("beside a 1-flow load, bulk ping loss", "sparse_bulk_loss", "bridge-htb", 1, "{:.2f}"))
rows.append(("CPU s per Mframe (1 dir)", "cpu_s_per_mframe", None, 1, "{:.3f}"))
rows.append(("peak RSS (MiB)", "peak_rss_kb", None, 1 / 1024, "{:.1f}"))
rows.append(("frames received by weir (idle, TCP, 64B tests)", "weir_rx_fwd", None, 1, "{:.0f}"))
rows.append(("  of which weir dropped", "weir_drops_fwd", None, 1, "{:.0f}"))
rows.append(("frames the kernel dropped at weir's sockets (same tests)", "kernel_drops_fwd", None, 1, "{:.0f}"))
for x, lab in (("ec", "equal CPU"), ("ecn", "equal CPU, NAPI")):
    rows += [
        (f"{lab}: 64B frames/s, 1 dir (kpps)", f"{x}_pps_1dir", "bridge", 1e-3, "{:.0f}"),
        (f"{lab}: 64B delivered fraction", f"{x}_pps_1dir_delivered", "bridge", 1, "{:.3f}"),
        (f"{lab}: 64B frames per CPU-1 second (k)", f"{x}_frames_per_cpu1_s", "bridge", 1e-3, "{:.0f}"),
    ]
    if x == "ec":  # not measured in the NAPI variant (compare.sh, ec_rows)
        rows += [
            (f"{lab}: 64B highest rate delivered whole (kpps)", "ec_lossfree_pps", "bridge", 1e-3, "{:.0f}"),
            (f"{lab}: CPU 1 us per frame at 100k frames/s", "ec_cpu1_us_per_frame_100k", "bridge", 1, "{:.2f}"),
        ]
    rows += [
        (f"{lab}: 64B top speed, IPIs to CPU 1 per frame", f"{x}_ipis_to_cpu1_per_frame", "bridge", 1, "{:.3f}"),
        (f"{lab}: 64B top speed, IPIs to CPU 0 per frame", f"{x}_ipis_to_cpu0_per_frame", "bridge", 1, "{:.3f}"),
    ]
    for n in (1, 4):
        flows = f"{n} flow{'s' if n > 1 else ''}"
        rows += [
            (f"{lab}: TCP {flows} (Gbit/s)", f"{x}_tcp_{n}flow_bps", "bridge", 1e-9, "{:.2f}"),
            (f"{lab}: TCP {flows} retransmits", f"{x}_tcp_{n}flow_retransmits", "bridge", 1, "{:.0f}"),
        ]
rows += [
    ("equal CPU, 1G + 2x flood: offered (Mbit/s)", "ec_overload_offered_bps", "bridge-htb", 1e-6, "{:.0f}"),
    ("equal CPU, 1G + 2x flood: dst0 rx (Mbit/s)", "ec_overload_dst_rx_bps", "bridge-htb", 1e-6, "{:.0f}"),
]
for k in ("prio", "bulk"):
    rows.append((f"equal CPU, 1G + 2x flood: {k} RTT p50 (ms)", f"ec_overload_{k}_rtt_p50_ms", "bridge-htb", 1, "{:.2f}"))
    rows.append((f"equal CPU, 1G + 2x flood: {k} RTT p99 (ms)", f"ec_overload_{k}_rtt_p99_ms", "bridge-htb", 1, "{:.2f}"))
    rows.append((f"equal CPU, 1G + 2x flood: {k} ping loss", f"ec_overload_{k}_loss", "bridge-htb", 1, "{:.3f}"))
rows.append(("equal CPU, 1G + 2x flood: kernel drops at weir", "ec_overload_kernel_drops", None, 1, "{:.0f}"))
rows.append(("equal CPU, 1G + 2x flood: CPU 1 backlog drops", "ec_overload_backlog_drops", "bridge-htb", 1, "{:.0f}"))
rows.append(("equal CPU, 1G + 2x flood: CPU 1 softirq out of budget", "ec_overload_time_squeeze", "bridge-htb", 1, "{:.0f}"))
rows.append(("equal CPU, 1G + 2x flood: ksoftirqd/1 CPU (s)", "ec_overload_ksoftirqd_s", "bridge-htb", 1, "{:.2f}"))
rows += [
    ("both CPUs: TCP 4 flows (Gbit/s)", "wk_tcp_4flow_bps", "bridge", 1e-9, "{:.2f}"),
    ("both CPUs: 64B frames/s, 2 dirs (kpps)", "wk_pps_2dir", "bridge", 1e-3, "{:.0f}"),
    ("both CPUs: 64B delivered fraction, 2 dirs", "wk_pps_2dir_delivered", "bridge", 1, "{:.3f}"),
]
rows = [r for r in rows if any(r[1] in m for m in data.values())]
def fmt(v, scale, f): return "not measured" if v is None else f.format(v * scale)
def ratio(a, b): return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"
weirs = [("weir-afp", "afp"), ("weir-mmsg", "mmsg"), ("weir-ring", "ring"), ("weir-pnet", "pnet"),
         ("weir-noexpress", "noexp"), ("weir-high", "high"), ("weir-normal", "normal"), ("weir-w1", "w1"), ("weir-w2", "w2")]
weirs = [w for w in weirs if w[0] in data]
hdr = ("row", "kernel") + tuple(x for d, s in weirs for x in (d, f"{s}/kern"))
table = []
for label, m, kd, sc, f in rows:
    k = data.get(kd, {}).get(m) if kd else None
    kt = fmt(k, sc, f) if kd else "n/a (softirq)"
    if kd is None and m in ("peak_rss_kb", "weir_rx_fwd", "weir_drops_fwd", "kernel_drops_fwd", "ec_overload_kernel_drops"): kt = "n/a"
    cells = []
    for d, _ in weirs:
        v = data.get(d, {}).get(m)
        cells += [fmt(v, sc, f), ratio(v, k)]
    table.append((label + ("" if kd is None else f" [{kd}]"), kt, *cells))
w = [max(len(str(r[i])) for r in table + [hdr]) for i in range(len(hdr))]
for r in [hdr] + table:
    print("  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "quick": quick == "1", "nproc": os.cpu_count(), "kernel": platform.release(),
    "loadavg_before": lb, "loadavg_after": la,
    "wire_factor": WIRE, "results": data,
    "table": [dict(zip(hdr, r)) for r in table],
    "samples": samples,
}, open(out, "w"), indent=1)
print(f"\nJSON: {out}")
PY
python3 benches/plot_latency.py "$out" --out "target/compare/latency-$stamp.svg" ||
    log "plot_latency.py failed; the JSON above is complete"

