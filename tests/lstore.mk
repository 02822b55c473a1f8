# Tests of compat-xs's local store (compat-xs/lstore*.c, docs/COMPAT.md
# "The local store"): a Check suite of requests, a multi-process suite
# (concurrent transactions, kill -9 of writers), a comparison with the
# real xenstored, and a fuzz target on request payloads.

LSTORE_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,compat-xs/lstore.c compat-xs/lstore_env.c \
	compat-xs/lstore_tx.c compat-xs/lstore_watch.c compat-xs/wire.c)

define lstore_check_rules
$$(OBJDIR)/tests/unit/$(1).o: BASE_CFLAGS += $$(CHECK_CFLAGS) $$(LMDB_CFLAGS)
$$(TESTOUT)/$(1): $$(OBJDIR)/tests/unit/$(1).o $$(LSTORE_OBJS)
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_LDFLAGS) -o $$@ $$^ $$(LMDB_LIBS) $$(CHECK_LIBS)
endef
$(foreach t,check_lstore check_lstore_mp,$(eval $(call lstore_check_rules,$(t))))

UNIT_TESTS += $(TESTOUT)/check_lstore $(TESTOUT)/check_lstore_mp
# Connections are shared between threads: the suites run under TSan too.
TSAN_TESTS += $(TESTOUT)/check_lstore_mp

# libFuzzer target: request payloads of every type against one store.
LSTORE_FUZZ_SRCS := tests/fuzz/fuzz_lstore.c compat-xs/lstore.c compat-xs/lstore_env.c \
	compat-xs/lstore_tx.c compat-xs/lstore_watch.c compat-xs/wire.c
$(BUILD)/fuzz/fuzz_lstore: $(LSTORE_FUZZ_SRCS) compat-xs/lstore.h \
		compat-xs/gstore.h compat-xs/wire.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Iinclude -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $(LSTORE_FUZZ_SRCS) $(LMDB_LIBS)
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz_lstore

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
