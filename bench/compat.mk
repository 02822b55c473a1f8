# bench/compat: the legacy driver pair and xs_* latencies against Debian's
# xenstored, oxenstored and compat-xs (bench/compat.sh runs all three).
#   build/bench/compat-bench LABEL [N ...]

COMPAT_BENCH := $(BENCHOUT)/compat-bench

$(COMPAT_BENCH): $(OBJDIR)/bench/compat.o $(OBJDIR)/bench/svc.o \
		$(OBJDIR)/frontends/legacy/legacy.o
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore

BENCH_PROGS += $(COMPAT_BENCH)
