#!/usr/bin/env bash
# The scheduler bench (benches/schedule.rs) of an older revision against this tree's, in turns.
#
#   benches/schedule_ab.sh REV [ROUNDS] [FILTER]
#
# REV is checked out in a worktree under ${TMPDIR:-/tmp} and built with its own target
# directory (kept between runs, so a second call only builds what changed). Each round runs
# REV's bench binary, then this tree's, each from its own tree (so `home.ron` is each tree's
# own config). Prints each case's Criterion median per round and the ratio new / old.
# ROUNDS defaults to 3, FILTER (a Criterion filter) to "one_class".
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: benches/schedule_ab.sh REV [ROUNDS] [FILTER]}
rounds=${2:-3}
filter=${3:-one_class}
short=$(git rev-parse --short "$rev")
tmp=${TMPDIR:-/tmp}
old_tree="$tmp/weir-ab-$short"
old_target="$tmp/weir-ab-$short-target"
[ -d "$old_tree" ] || git worktree add -f --detach "$old_tree" "$rev" >/dev/null

bench_binary() { # DIR TARGET: build the bench, print its executable
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench schedule --no-run 2>&1) |
        sed -n 's/.*Executable benches\/schedule.rs (\(.*\))/\1/p' | tail -1
}
old_bin=$(bench_binary "$old_tree" "$old_target")
new_bin=$(bench_binary "$PWD" "${CARGO_TARGET_DIR:-$PWD/target}")
case $old_bin in /*) ;; *) old_bin="$old_target/${old_bin#*target/}" ;; esac
case $new_bin in /*) ;; *) new_bin="$PWD/$new_bin" ;; esac

medians() { # DIR BINARY: "case median_ns" per line
    (cd "$1" && "$2" --bench "$filter" --discard-baseline 2>&1) | python3 -c '
import re, sys
scale = {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
for m in re.finditer(r"(schedule/\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+)", sys.stdin.read()):
    print(m.group(1), "%.1f" % (float(m.group(2)) * scale[m.group(3)]))'
}
echo "round case old_ns new_ns new/old (old = $short, load: $(cut -d' ' -f1-3 /proc/loadavg))"
for r in $(seq "$rounds"); do
    old=$(medians "$old_tree" "$old_bin")
    new=$(medians "$PWD" "$new_bin")
    join <(echo "$old" | sort) <(echo "$new" | sort) |
        awk -v r="$r" '{ printf "%s %s %s %s %.2f\n", r, $1, $2, $3, $3 / $2 }'
done
