# Benchmarks of the console and blk drivers (included from bench/module.mk).
#   build/bench/blk [-H] [-n REPS] [-o OPS] [-q QDS] [-r ORDER] [SIZE_MB [SECONDS]]
#                                           noxs blk vs direct pread/pwrite
#   build/bench/console [MB [ROUNDTRIPS]]   console throughput and latency
# Both start their own noxsd and backend (they need the driver binaries).

$(BENCHOUT)/blk: $(OBJDIR)/bench/blk.o $(OBJDIR)/bench/svc.o \
		$(OBJDIR)/drivers/blk/blkfront.o \
		$(LIBOUT)/libnoxs.so | $(BINOUT)/noxs-blk-back
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) -L$(LIBOUT) -lnoxs $(XEN_LIBS)

$(BENCHOUT)/console: $(OBJDIR)/bench/console.o $(OBJDIR)/bench/svc.o \
		$(LIBOUT)/libnoxs.so \
		| $(BINOUT)/noxs-console-back $(BINOUT)/noxs-console-front
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) -L$(LIBOUT) -lnoxs $(XEN_LIBS)

BENCH_PROGS += $(BENCHOUT)/blk $(BENCHOUT)/console
