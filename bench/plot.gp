# bench/plot.gp: the plots of docs/BENCHMARKS.md, from the plot-*.dat files
# bench/report.py writes. Run by scripts/bench.sh:
#   gnuplot -e "res='build/bench/results'; out='docs/bench'" bench/plot.gp
# Points are medians over the run's repetitions; error bars span min-max.

if (!exists("res")) res = 'build/bench/results'
if (!exists("out")) out = 'docs/bench'
set datafile missing "?"
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set grid
set key top left box opaque

# 1, 2. bring-up with three devices per domain: the first byte and the
# teardown against N (bench/report_bringup3.py's data; columns noxs,
# xenstored, oxenstored, "?" where an implementation has no figure).
# Only when the run has such lines; drawn first, so that a plot
# whose data a failed step left empty cannot stop these.
b3 = res.'/plot-bringup3.dat'
if (system("test -s '".b3."' && echo yes") eq "yes") {
    set output out.'/bringup3.png'
    set title 'Bring-up with sysctl, console and blk: dev-add to first byte (last tenth before N)'
    set xlabel 'number of domains N (log)'
    set ylabel 'per domain, median (ms, log)'
    set logscale xy
    set key bottom right
    plot b3 using 1:2:3:4 with yerrorlines lw 2 pt 11 title 'noxs native', \
         '' using 1:5:6:7 with yerrorlines lw 2 pt 7 title 'xenstored (C)', \
         '' using 1:8:9:10 with yerrorlines lw 2 pt 5 title 'oxenstored (OCaml)'
    set output out.'/bringup3-teardown.png'
    set title 'Teardown of N domains with three devices each'
    set ylabel 'time to destroy all N (s, log)'
    plot res.'/plot-bringup3-teardown.dat' using 1:2:3:4 with yerrorlines lw 2 pt 11 title 'noxs native', \
         '' using 1:5:6:7 with yerrorlines lw 2 pt 7 title 'xenstored (C)', \
         '' using 1:8:9:10 with yerrorlines lw 2 pt 5 title 'oxenstored (OCaml)'
    unset logscale
    set key top left
}

# 3. handshake per device vs number of domains, log-log
set output out.'/handshake.png'
set title 'Device handshake at the Nth domain (earlier domains kept connected)'
set xlabel 'number of domains N'
set ylabel 'handshake time per device (ms, log)'
set logscale xy
set format y '%g'
set xrange [*:*]
plot res.'/plot-handshake.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 title 'xenstored (C)', \
     ''                        using 1:5:6:7 with yerrorlines lw 2 pt 5 title 'oxenstored (OCaml)', \
     ''                        using 1:8:9:10 with yerrorlines lw 2 pt 9 title 'compat-xs + noxsd (legacy pair)', \
     ''                        using 1:11:12:13 with yerrorlines lw 2 pt 11 title 'noxs native'
unset logscale

# 4. xs_* op latency, grouped bars (log scale)
set output out.'/ops.png'
set title 'xs_* operation latency (median; bars: min-max over repetitions)'
set xlabel ''
set ylabel 'latency (us, log)'
set logscale y
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set key top left
set yrange [0.1:*]
plot res.'/plot-ops.dat' using 2:3:4:xtic(1) title 'xenstored (C)', \
     '' using 5:6:7 title 'oxenstored (OCaml)', \
     '' using 8:9:10 title 'compat-xs + noxsd'
unset logscale
set yrange [*:*]

# 5. dom0 memory per domain
set output out.'/memory.png'
set title 'dom0 memory per domain (daemon RSS growth; noxs: plus shared pages)'
set ylabel 'KiB per domain'
set yrange [0:*]
set key top right
plot res.'/plot-memory.dat' using 2:3:4:xtic(1) title 'daemon RSS growth', \
     '' using 5:6:7 title 'pages shared with the guest (4 KiB each)'
set yrange [*:*]

# 6. concurrency: total bring-up time vs K clients
set output out.'/concurrency.png'
set style data linespoints
set title 'Bring-up with K toolstack clients at once'
set xlabel 'K (toolstack clients)'
set ylabel 'total time (ms, log)'
set logscale y
set xtics (1, 2, 4, 8)
set xrange [0.7:9]
set key top left
plot res.'/plot-concurrency.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 title 'xenstored (C)', \
     '' using 1:5:6:7 with yerrorlines lw 2 pt 5 title 'oxenstored (OCaml)', \
     '' using 1:8:9:10 with yerrorlines lw 2 pt 9 title 'compat-xs + noxsd', \
     '' using 1:11:12:13 with yerrorlines lw 2 pt 11 title 'noxs native'
