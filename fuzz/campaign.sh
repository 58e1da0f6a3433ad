#!/usr/bin/env bash
# The long fuzzing runs whose figures docs/fuzzing.md gives: each target (or those named) for
# RUNS executions (10 million by default), one after another on one core, growing its committed
# corpus; then each corpus minimized. Needs nightly and cargo-fuzz. Logs: fuzz/logs/TARGET.log.
#
#   fuzz/campaign.sh                  # every target, 10,000,000 executions each
#   RUNS=1000000 fuzz/campaign.sh rule config
set -euo pipefail
cd "$(dirname "$0")"
runs="${RUNS:-10000000}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(payload capture rule config classify pipeline)
# Optimized, with debug assertions and overflow checks (-a: an overflow the release build would
# wrap silently is a finding), without a sanitizer: the targets reach only safe Rust (weir's
# unsafe code is in its kernel modules, which no target reaches) and libpcap, which cargo-fuzz
# does not instrument; AddressSanitizer would cost 6-14x the executions (docs/fuzzing.md) and
# find nothing Rust's checks do not.
cargo +nightly fuzz build -O -a -s none
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
# The classifier and the schedulers allocate their tables per input: keep glibc from mapping and
# unmapping them each time (4x the executions for `pipeline`).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824
for t in "${targets[@]}"; do
    mkdir -p "artifacts/$t"
    echo "fuzz: $t, $runs executions ($(date -u +%H:%M:%S))"
    "$bin/$t" "corpus/$t" -runs="$runs" -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1 || {
        echo "fuzz: $t FAILED: logs/$t.log, input in artifacts/$t/"
        exit 1
    }
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "logs/$t.log" || true
    # Minimize: merge the grown corpus into an empty one, keeping what adds coverage.
    rm -rf "corpus/$t.min" && mkdir "corpus/$t.min"
    "$bin/$t" -merge=1 -max_len=8192 "corpus/$t.min" "corpus/$t" >"logs/$t.merge.log" 2>&1
    rm -rf "corpus/$t" && mv "corpus/$t.min" "corpus/$t"
    echo "fuzz: $t corpus $(ls "corpus/$t" | wc -l) inputs, $(cat corpus/$t/* | wc -c) bytes"
done
