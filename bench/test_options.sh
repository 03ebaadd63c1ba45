#!/usr/bin/env bash
# Smoke test of smmu-bench's prefetch and unsync options: tiny runs with no faulting vCPU (so
# the counts are exact), checking that each option moves the census in the JSON record the way
# it says. No timing is checked. Usage: test_options.sh path/to/smmu-bench
#
# SPDX-License-Identifier: MIT
set -euo pipefail
BENCH=$1
FAILS=0
PASSES=0

# run ARGS...: one zap_all_hold run of 1K pages, no vCPU faulting; prints its JSON record
run() {
	"$BENCH" --pages 1K --vcpus 0 --strategies zap_all_hold --floor-runs 1 --json "$@" 2>/dev/null
}

# field KEY RECORD: the value of "KEY" in a one-line JSON record
field() {
	printf '%s\n' "$2" | sed -n "s/.*\"$1\":\\([^,}]*\\).*/\\1/p"
}

check() { # check NAME CONDITION-RESULT(0/1) DETAIL
	if [ "$2" = 0 ]; then
		PASSES=$((PASSES + 1))
		echo "ok   $1"
	else
		FAILS=$((FAILS + 1))
		echo "FAIL $1: $3"
	fi
}

t() { [ "$@" ] && echo 0 || echo 1; }

# The default: no unsync page, one spte per build fault (every guest table holds one pte).
d=$(run)
faults=$(field build_faults "$d")
check "default: census present" "$(t -n "$faults" -a "${faults:-0}" -gt 0)" "$d"
check "default: no unsync page" "$(t "$(field unsync_pages "$d")" = 0)" "$(field unsync_pages "$d")"
check "default: one spte per fault" "$(t "$(field leaf_sptes "$d")" = "$faults")" \
	"leaf_sptes $(field leaf_sptes "$d"), build_faults $faults"
check "default: guest ptes accessed, host frames as faulted" \
	"$(t "$(field gpte_accessed "$d")" = true -a "$(field host_writable "$d")" = false -a \
	"$(field per_table "$d")" = 1)" "$d"

# --guest-writes N: N level-1 pages unsync before the zap, none after zap_all.
g=$(run --guest-writes 100)
check "guest-writes: 100 rewrites" "$(t "$(field guest_writes "$g")" = 100)" "$(field guest_writes "$g")"
check "guest-writes: 100 unsync pages" "$(t "$(field unsync_pages "$g")" = 100)" \
	"unsync_pages $(field unsync_pages "$g")"
check "guest-writes: zap_all leaves none" "$(t "$(field unsync_after "$g")" = 0)" \
	"unsync_after $(field unsync_after "$g")"

# --guest-reads N, the control: the same pages and sptes, nothing unsync.
c=$(run --guest-reads 100)
check "guest-reads: 100 reads, no unsync page" \
	"$(t "$(field guest_reads "$c")" = 100 -a "$(field unsync_pages "$c")" = 0)" \
	"guest_reads $(field guest_reads "$c"), unsync_pages $(field unsync_pages "$c")"
check "guest-reads: the same pages and sptes as guest-writes" \
	"$(t "$(field leaf_pages "$c")" = "$(field leaf_pages "$g")" -a "$(field leaf_sptes "$c")" = "$(field leaf_sptes "$g")")" \
	"leaf_pages/sptes $(field leaf_pages "$c")/$(field leaf_sptes "$c") against $(field leaf_pages "$g")/$(field leaf_sptes "$g")"

# --per-table 8 with the host's frames mapped writable: each fault prefetches its 7 neighbours.
p=$(run --per-table 8 --host-writable on)
pf=$(field build_faults "$p")
check "prefetch on: 8 sptes per fault" "$(t "$(field leaf_sptes "$p")" = "$((8 * ${pf:-0}))")" \
	"leaf_sptes $(field leaf_sptes "$p"), build_faults $pf"
check "prefetch on: same pages as the default" "$(t "$(field leaf_pages "$p")" = "$(field leaf_pages "$d")")" \
	"leaf_pages $(field leaf_pages "$p") against $(field leaf_pages "$d")"

# The same without the Accessed bit, or without the host mapping: nothing to prefetch.
a=$(run --per-table 8 --host-writable on --gpte-accessed off)
check "gpte-accessed off: one spte per fault" \
	"$(t "$(field leaf_sptes "$a")" = "$(field build_faults "$a")" -a "$(field gpte_accessed "$a")" = false)" \
	"leaf_sptes $(field leaf_sptes "$a"), build_faults $(field build_faults "$a")"
h=$(run --per-table 8)
check "host-writable off: one spte per fault" "$(t "$(field leaf_sptes "$h")" = "$(field build_faults "$h")")" \
	"leaf_sptes $(field leaf_sptes "$h"), build_faults $(field build_faults "$h")"

# Bad uses are refused.
if "$BENCH" --workload direct --guest-writes 1 --vcpus 0 >/dev/null 2>&1; then r=1; else r=0; fi
check "direct refuses --guest-writes" "$r" "exit 0"
if "$BENCH" --guest-writes 1 --guest-reads 1 --vcpus 0 >/dev/null 2>&1; then r=1; else r=0; fi
check "--guest-writes and --guest-reads exclude each other" "$r" "exit 0"
if "$BENCH" --gpte-accessed maybe --vcpus 0 >/dev/null 2>&1; then r=1; else r=0; fi
check "--gpte-accessed wants on|off" "$r" "exit 0"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
