# bench/compat: the legacy driver pair and basic xs_* latencies against Debian's
# xenstored, oxenstored and compat-xs (bench/compat.sh runs all three).
#   build/bench/compat-bench [--ring] LABEL [N ...]
# With --ring the guests' frontends speak the store ring protocol
# (bench/xsrclient.c) to a daemon started by tests/compat/xsd.sh with
# XSD_SIM=1, which preloads bench/xsdsim.so and the simulator.
# bench/ringd.sh runs --ring against xenstored, oxenstored and
# noxs-xsringd (the ring service of a noxs-only dom0).

COMPAT_BENCH := $(BENCHOUT)/compat-bench
XSDSIM_SHIM := $(BENCHOUT)/xsdsim.so

$(COMPAT_BENCH): $(OBJDIR)/bench/compat.o $(OBJDIR)/bench/svc.o \
		$(OBJDIR)/bench/xsrclient.o $(OBJDIR)/tests/legacy/legacy.o \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) -lxenstore \
		-L$(LIBOUT) -lnoxs -lxenevtchn

# Built against Xen's own headers, which need GNU C.
$(XSDSIM_SHIM): bench/xsdsim.c bench/xsrclient.h tests/compat/xsshim-libc.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -fPIC -shared $(WARNINGS) $(CFLAGS) \
		-fvisibility=hidden -o $@ $< -lxenforeignmemory -lxenevtchn -ldl

BENCH_PROGS += $(COMPAT_BENCH) $(XSDSIM_SHIM)
ALL_TARGETS += $(COMPAT_BENCH) $(XSDSIM_SHIM)
