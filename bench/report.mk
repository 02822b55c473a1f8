# The benchmark report: bring-up / concurrency programs, and
# what `make bench` needs beyond `all` (included from bench/module.mk).
#   build/bench/noxs-bringup IMPL N K   native libnoxs, K toolstack clients
#   build/bench/xs-bringup IMPL N K     legacy xs_* pair, K toolstack clients
#                                       (BENCH_GUESTS=ring: frontends on rings)
#   build/bench/bringup3 [--reps R] N...  N domains with sysctl, console and
#                                       blk each, to the first byte, and
#                                       their teardown (own noxsd, backends)
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

BRINGUP3_OBJS := $(addprefix $(OBJDIR)/bench/,bringup3.o bringup3-guest.o \
	svc.o) $(OBJDIR)/drivers/blk/blkfront.o $(CONSRING_OBJS)
$(OBJDIR)/bench/bringup3.o $(OBJDIR)/bench/bringup3-guest.o: \
	BASE_CFLAGS += -Idrivers/blk -Idrivers/console
$(BENCHOUT)/bringup3: $(BRINGUP3_OBJS) $(COMMON_LIB) $(LIBOUT)/libnoxs.so \
		| $(BINOUT)/noxs-sysctl-back $(BINOUT)/noxs-console-back \
		$(BINOUT)/noxs-blk-back $(SIMSTAT_TOOL)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(BRINGUP3_OBJS) $(COMMON_LIB) -L$(LIBOUT) \
		-lnoxs $(XEN_LIBS)

BENCH_PROGS += $(BENCHOUT)/bringup3 $(BENCHOUT)/noxs-bringup $(BENCHOUT)/xs-bringup \
	$(BENCHOUT)/xs-bringup3 \
	$(TESTOUT)/compat/xsshim.so
# tests/compat/test-bench-ring.sh runs it small.
ALL_TARGETS += $(BENCHOUT)/xs-bringup $(BENCHOUT)/bringup3 $(BENCHOUT)/xs-bringup3
# tests/integration/bench-bringup3.sh runs bringup3 small.
INTEGRATION_TESTS += tests/integration/bench-bringup3.sh
tests/integration/bench-bringup3.sh: $(BENCHOUT)/bringup3 $(DRV_IT_DEPS)

# Debian's daemons, gnuplot, python3 (scripts/deps.sh bench).
bench-deps:
	@scripts/deps.sh bench

.PHONY: bench-deps
