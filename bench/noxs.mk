# noxs's own benchmarks (included from bench/module.mk).
#   build/bench/handshake 10 100 1000 10000   dev-add -> Connected per block

HANDSHAKE := $(BENCHOUT)/handshake

$(HANDSHAKE): $(OBJDIR)/bench/handshake.o $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(OBJDIR)/bench/handshake.o -L$(LIBOUT) \
		-lnoxs $(XEN_LIBS)

BENCH_PROGS += $(HANDSHAKE)
# make demo (scripts/demo.sh) times the handshakes with it.
ALL_TARGETS += $(HANDSHAKE)
