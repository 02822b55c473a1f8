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

# The smoke test (tests/compat/test-bench-generic.sh) runs it.
$(COMPAT_TESTOUT)/test-bench-generic.sh: $(GENERIC_BENCH)

# make bench-generic: only this benchmark, 3 repetitions at 10 and 1000
# domains, then its section of docs/BENCHMARKS.md (the rest of the
# document stays as the last `make bench` / `make bench-full` wrote it).
bench-generic: all $(GENERIC_BENCH) $(TESTOUT)/compat/xsshim.so
	@scripts/deps.sh compat
	@rm -rf $(BENCHOUT)/generic
	@$(RUN_ENV) bench/generic.sh run $(BENCHOUT)/generic 3 10 1000
	@python3 bench/report_generic.py $(BENCHOUT)/generic docs/BENCHMARKS.md

.PHONY: bench-generic
