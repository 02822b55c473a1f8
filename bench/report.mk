# The benchmark report: bring-up / concurrency programs, and
# what `make bench` needs beyond `all` (included from bench/module.mk).
#   build/bench/noxs-bringup IMPL N K   native libnoxs, K toolstack clients
#   build/bench/xs-bringup IMPL N K     legacy xs_* pair, K toolstack clients
#                                       (BENCH_GUESTS=ring: frontends on rings)
#   build/bench/xs-bringup3 IMPL N      three devices a domain on Debian's
#                                       daemons, ring guests, first byte
#                                       (bench/xs-bringup3.sh runs it)
# scripts/bench.sh runs everything; bench/report.py writes
# docs/BENCHMARKS.md and bench/plot.gp the plots in docs/bench/.

$(BENCHOUT)/noxs-bringup: $(OBJDIR)/bench/bringup.o $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(OBJDIR)/bench/bringup.o -L$(LIBOUT) \
		-lnoxs $(XEN_LIBS)

$(BENCHOUT)/xs-bringup: $(OBJDIR)/bench/xsbringup.o $(OBJDIR)/bench/svc.o \
		$(OBJDIR)/bench/xsrclient.o $(OBJDIR)/tests/legacy/legacy.o \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) -lxenstore \
		-L$(LIBOUT) -lnoxs -lxenevtchn

XSBRINGUP3_OBJS := $(addprefix $(OBJDIR)/bench/,xsbringup3.o \
	xsbringup3-guest.o xsbringup3-back.o xsrclient.o) \
	$(OBJDIR)/tests/legacy/legacy.o
$(BENCHOUT)/xs-bringup3: $(XSBRINGUP3_OBJS) $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(XSBRINGUP3_OBJS) -lxenstore \
		-L$(LIBOUT) -lnoxs $(XEN_LIBS)

BENCH_PROGS += $(BENCHOUT)/noxs-bringup $(BENCHOUT)/xs-bringup \
	$(BENCHOUT)/xs-bringup3 \
	$(TESTOUT)/compat/xsshim.so
# tests/compat/test-bench-ring.sh runs it small.
ALL_TARGETS += $(BENCHOUT)/xs-bringup $(BENCHOUT)/xs-bringup3

# Debian's daemons, gnuplot, python3 (scripts/deps.sh bench).
bench-deps:
	@scripts/deps.sh bench

.PHONY: bench-deps
