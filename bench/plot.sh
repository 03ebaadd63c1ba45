#!/usr/bin/env bash
# Turn smmu-bench --json output into PNGs (needs only bash, awk and gnuplot):
#   hold.png     mmu_lock hold p50 / p99 / max of the zapping site, per strategy (bars)
#   wait.png     vCPU wait for mmu_lock, p99 (and max), per strategy (bars)
#   scaling.png  max hold versus shadow pages, log-log (from a --scaling run)
#
# usage: bench/plot.sh [-o OUTDIR] RUN.jsonl [SCALING.jsonl]
#   The bar charts use RUN.jsonl (its largest size if it holds several); the scaling chart uses
#   SCALING.jsonl, or RUN.jsonl when that one holds several sizes.
#
# SPDX-License-Identifier: MIT
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=.
while getopts "o:h" opt; do
	case $opt in
	o) outdir=$OPTARG ;;
	h) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 [-o OUTDIR] RUN.jsonl [SCALING.jsonl]" >&2
	exit 2
fi
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found" >&2; exit 1; }
run=$1
scaling=${2:-$1}
for f in "$run" "$scaling"; do
	[ -r "$f" ] || { echo "plot.sh: cannot read $f" >&2; exit 1; }
done
mkdir -p "$outdir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One row per JSON line: strategy pages vcpus workload hold{p50,p99,p999,max} wait{p50,p99,max}
# (times in microseconds; 0 becomes 1e-4, below the charts' 0.01 floor, so a log scale shows no
# bar yet every column keeps its place). Plain awk: the JSON is flat except for the hold_ns /
# wait_ns objects, which are matched as a whole first.
extract() {
	awk '
	function str(line, key,   m) {
		if (match(line, "\"" key "\":\"[^\"]*\"")) {
			m = substr(line, RSTART, RLENGTH); sub("^\"" key "\":\"", "", m); sub("\"$", "", m)
			return m
		}
		return "?"
	}
	function num(line, key,   m) {
		if (match(line, "\"" key "\":-?[0-9.eE+]+")) {
			m = substr(line, RSTART, RLENGTH); sub("^\"" key "\":", "", m)
			return m + 0
		}
		return 0
	}
	function obj(line, key) {
		if (match(line, "\"" key "\":[{][^}]*[}]"))
			return substr(line, RSTART, RLENGTH)
		return ""
	}
	function us(ns) { return ns > 0 ? sprintf("%.4f", ns / 1000) : "0.0001" }
	/^[{]/ {
		h = obj($0, "hold_ns"); w = obj($0, "wait_ns")
		printf "%s %d %d %s %s %s %s %s %s %s %s\n", str($0, "strategy"), num($0, "shadow_pages"),
			num($0, "vcpus"), str($0, "workload"),
			us(num(h, "p50")), us(num(h, "p99")), us(num(h, "p999")), us(num(h, "max")),
			us(num(w, "p50")), us(num(w, "p99")), us(num(w, "max"))
	}' "$1"
}

extract "$run" >"$tmp/run.dat"
extract "$scaling" >"$tmp/scaling.dat"
[ -s "$tmp/run.dat" ] || { echo "plot.sh: no JSON lines in $run" >&2; exit 1; }

# Bars: the largest size of the run file. Pages differ slightly between strategies (the faulting
# vCPUs do not add pages before the zap, but the workload is rounded), so group by magnitude.
awk '{ k = sprintf("%.0f", log($2) / log(10) * 2); if (k > best) best = k; row[NR] = $0; key[NR] = k }
     END { for (i = 1; i <= NR; i++) if (key[i] == best) print row[i] }' "$tmp/run.dat" >"$tmp/bars.dat"
workload=$(awk 'NR == 1 { print $4 }' "$tmp/bars.dat")
pages=$(awk 'NR == 1 { print $2 }' "$tmp/bars.dat")
vcpus=$(awk 'NR == 1 { print $3 }' "$tmp/bars.dat")

# Scaling: one block per strategy (gnuplot "index"), sorted by pages.
: >"$tmp/scale.dat"
nblocks=0
names=""
# name:column — column 8 is the max hold, 6 the p99 (shown for the drain: its typical stretch)
for sc in zap_all_hold:8 zap_all_gen:8 fast_zap_drain:8 fast_zap_drain:6 fast_zap_leaf_drain:8 \
	fast_zap_leaf_drain:6 fast_zap_bump:8 \
	flush_zap_all:8 flush_fast_zap:8; do
	s=${sc%:*}
	col=${sc#*:}
	awk -v s="$s" -v c="$col" '$1 == s && $c > 0.0001 { print $2, $c }' "$tmp/scaling.dat" |
		sort -n >"$tmp/one.dat"
	if [ "$(wc -l <"$tmp/one.dat")" -ge 2 ]; then
		cat "$tmp/one.dat" >>"$tmp/scale.dat"
		printf '\n\n' >>"$tmp/scale.dat"
		if [ "$col" = 6 ]; then names="$names ${s}_(p99)"; else names="$names $s"; fi
		nblocks=$((nblocks + 1))
	fi
done
swork=$(awk 'NR == 1 { print $4 }' "$tmp/scaling.dat")
svcpus=$(awk 'NR == 1 { print $3 }' "$tmp/scaling.dat")

gnuplot -e "bars='$tmp/bars.dat'; scale='$tmp/scale.dat'; nblocks=$nblocks; names='${names# }'; \
	outdir='$outdir'; subtitle='$workload workload, $pages shadow pages, $vcpus vCPU(s) faulting'; \
	ssubtitle='$swork workload, $svcpus vCPU(s) faulting'" \
	"$here/plot.gp"
echo "wrote $outdir/hold.png $outdir/wait.png$([ "$nblocks" -gt 0 ] && echo " $outdir/scaling.png")"
