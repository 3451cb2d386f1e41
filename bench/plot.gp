# Messages per second against message size: one panel per CPU placement (rows)
# and number of writers+readers (columns), one line per transport. run.sh calls
#   gnuplot -e "data='latest.dat'; vars='latest.vars.gp'; out='latest.png'" bench/plot.gp
# where both inputs come from mqfs_bench (--plot-data, --plot-vars): vars sets
# `placements`, `procs`, `ncolumns`, `placement_title_N` and `linetypes` (the
# line type of each data column, so that a transport keeps its style whatever
# its column). The batched mqfs cases (framing u32 / line, many messages per
# write and per read) are the dark red and pink lines.
linetypes = ""
load vars
lt_of(c) = words(linetypes) >= c - 1 ? int(word(linetypes, c - 1)) : c - 1

rows = words(placements)
cols = words(procs)
set terminal pngcairo size 560 * cols, 420 * rows + 40 font "sans,9" noenhanced
set output out

set logscale xy
set xrange [48:90000]
set xtics ("64 B" 64, "1 KiB" 1024, "8 KiB" 8192, "64 KiB" 65536)
set format y "%.0s%c"
set ylabel "messages/s"
set grid xtics ytics mytics lc rgb "#dddddd"
set key top right font ",8" samplen 2
set style data linespoints
set datafile missing "NaN"

# mqfs first and strong, the kernel's queues solid, the FUSE floors dashed,
# batched mqfs strong again.
set linetype 1 lc rgb "#d62728" lw 3 pt 7 ps 1.0
set linetype 2 lc rgb "#1f77b4" lw 1.5 pt 5
set linetype 3 lc rgb "#2ca02c" lw 1.5 pt 9
set linetype 4 lc rgb "#9467bd" lw 1.5 pt 11
set linetype 5 lc rgb "#555555" lw 2 dt 2 pt 6
set linetype 6 lc rgb "#ff7f0e" lw 2 dt 2 pt 4
set linetype 7 lc rgb "#7b0000" lw 3 pt 13 ps 1.2
set linetype 8 lc rgb "#e377c2" lw 2 pt 15

set multiplot layout rows, cols title "mqfs throughput against message size (median of the rounds)"
do for [i = 1:rows] {
  do for [j = 1:cols] {
    n = word(procs, j)
    set title sprintf("%s: %s\n%s+%s (writers+readers, one queue)", word(placements, i), value(sprintf("placement_title_%d", i)), n, n)
    plot for [c = 2:ncolumns] data index ((i - 1) * cols + (j - 1)) using 1:c title columnhead lt lt_of(c)
  }
}
unset multiplot
