# Tests of compat-xs's local store (compat-xs/lstore*.c, docs/COMPAT.md
# "The local store"): a Check suite of requests, a multi-process suite
# (concurrent transactions, kill -9 of writers), a comparison with the
# real xenstored, and a fuzz target on request payloads.

LSTORE_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,compat-xs/lstore.c compat-xs/lstore_env.c \
	compat-xs/lstore_tx.c compat-xs/lstore_watch.c compat-xs/wire.c)

$(foreach t,check_lstore check_lstore_mp,$(eval $(call unit_test,$(t),\
	$(LSTORE_OBJS),$(LMDB_LIBS),$(LMDB_CFLAGS))))
# Connections are shared between threads: the suites run under TSan too.
TSAN_TESTS += $(TESTOUT)/check_lstore_mp

# libFuzzer target: request payloads of every type against one store.
$(eval $(call fuzz_target,fuzz_lstore,compat-xs/lstore.c \
	compat-xs/lstore_env.c compat-xs/lstore_tx.c compat-xs/lstore_watch.c \
	compat-xs/wire.c,compat-xs/lstore.h compat-xs/gstore.h \
	compat-xs/wire.h,,$(LMDB_LIBS)))

# The replay client and its script, next to the compat test scripts
# (test-lstore-conformance.sh is one of them, see tests/compat.mk).
$(COMPAT_TESTOUT)/lstore-replay: $(OBJDIR)/tests/compat/lstore-replay.o \
		$(LSTORE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ $(LMDB_LIBS)
$(COMPAT_TESTOUT)/lstore-ops.txt: tests/compat/lstore-ops.txt
	@mkdir -p $(@D)
	cp $< $@
$(COMPAT_TESTOUT)/test-lstore-conformance.sh: \
	$(COMPAT_TESTOUT)/lstore-replay $(COMPAT_TESTOUT)/lstore-ops.txt
