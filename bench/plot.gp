# gnuplot script for bench/plot.sh; expects the variables bars, scale, nblocks, names, outdir,
# subtitle (set with -e). Columns of bars: strategy pages vcpus workload hold_p50 hold_p99
# hold_p999 hold_max wait_p50 wait_p99 wait_max, times in microseconds.
#
# SPDX-License-Identifier: MIT

set terminal pngcairo size 1200,700 enhanced font "DejaVu Sans,11"
set grid ytics mytics lc rgb "#dddddd"
set border 3
set xtics nomirror rotate by -30 left noenhanced
set ytics nomirror
set key outside top center horizontal
set logscale y 10
set format y "10^{%L}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9

# ---- hold time per strategy ----
set output outdir."/hold.png"
set title "mmu\\_lock hold of the zapping site, per strategy\n{/*0.8 ".subtitle." (one hold = one stretch between lock breaks)}"
set ylabel "hold time (µs, log)"
set yrange [0.01:*]
# goals: fast zap's bump <= 1 µs, drain max <= 20 µs
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "#2a9d8f" front
set arrow 2 from graph 0, first 20 to graph 1, first 20 nohead dt 2 lc rgb "#e76f51" front
set label 1 "1 µs (bump goal)" at graph 1, first 1 right offset -1,0.6 tc rgb "#2a9d8f" front
set label 2 "20 µs (drain goal)" at graph 1, first 20 right offset -1,0.6 tc rgb "#e76f51" front
plot bars using 5:xtic(1) title "p50" lc rgb "#8ecae6", \
     "" using 6 title "p99" lc rgb "#219ebc", \
     "" using 8 title "max" lc rgb "#023047"
unset arrow 1
unset arrow 2
unset label 1
unset label 2

# ---- vCPU wait per strategy ----
set output outdir."/wait.png"
set title "vCPU wait for mmu\\_lock while the strategy runs (site fault)\n{/*0.8 ".subtitle."}"
set ylabel "wait (µs, log)"
set arrow 1 from graph 0, first 10 to graph 1, first 10 nohead dt 2 lc rgb "#e76f51" front
set label 1 "10 µs (drain p99 goal)" at graph 1, first 10 right offset -1,0.6 tc rgb "#e76f51" front
plot bars using 9:xtic(1) title "p50" lc rgb "#ffb703", \
     "" using 10 title "p99" lc rgb "#fb8500", \
     "" using 11 title "max" lc rgb "#9b2226"
unset arrow 1
unset label 1

# ---- max hold versus shadow pages ----
if (nblocks > 0) {
	set output outdir."/scaling.png"
	set style data linespoints
	set logscale xy 10
	set format x "10^{%L}"
	set xtics rotate by 0 center enhanced
	set xlabel "shadow pages"
	set ylabel "single hold of mmu\\_lock (µs, log): the max unless marked p99"
	set yrange [*:*]
	set autoscale xfix
	set offsets graph 0.04, graph 0.04, 0, 0
	set key inside top left vertical Left reverse
	set title "max mmu\\_lock hold versus shadow pages\n{/*0.8 ".ssubtitle."}"
	set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "#2a9d8f"
	set arrow 2 from graph 0, first 20 to graph 1, first 20 nohead dt 2 lc rgb "#e76f51"
	set label 1 "1 µs (bump goal)" at graph 1, first 1 right offset -1,0.6 tc rgb "#2a9d8f"
	set label 2 "20 µs (drain goal)" at graph 1, first 20 right offset -1,0.6 tc rgb "#e76f51"
	plot for [i=0:nblocks-1] scale index i using 1:2 with linespoints lw 2 pt 7 \
		title word(names, i+1) noenhanced
}
