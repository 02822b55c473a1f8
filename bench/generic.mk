# bench/generic: xs_* latencies on generic paths (names, memory target,
# /vm records) at N domains, through Debian's libxenstore against
# xenstored and oxenstored and through compat-xs in local and mixed mode
# (bench/generic.sh runs all four; scripts/bench.sh runs it per
# repetition).
#   build/bench/generic-bench LABEL N [N ...]

GENERIC_BENCH := $(BENCHOUT)/generic-bench

$(GENERIC_BENCH): $(OBJDIR)/bench/generic.o
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore

BENCH_PROGS += $(GENERIC_BENCH)
