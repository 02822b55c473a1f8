# Tests of noxsd, the wire protocol, libnoxs's client and backend, and
# noxsctl. (tests/module.mk includes every tests/*.mk.)

NOXSD_TEST_CFLAGS = $(CHECK_CFLAGS) -Ilibnoxs -Inoxsd

$(TESTOUT)/check_proto: tests/unit/check_proto.c $(NOXS_PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(NOXSD_TEST_CFLAGS) $(BASE_LDFLAGS) -o $@ $^ \
		$(CHECK_LIBS)

$(TESTOUT)/check_store: tests/unit/check_store.c $(OBJDIR)/noxsd/store.o \
		$(OBJDIR)/common/log.o
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(NOXSD_TEST_CFLAGS) $(BASE_LDFLAGS) -o $@ $^ \
		$(CHECK_LIBS)

$(TESTOUT)/check_registry: tests/unit/check_registry.c \
		$(OBJDIR)/noxsd/registry.o $(OBJDIR)/common/log.o
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(NOXSD_TEST_CFLAGS) $(BASE_LDFLAGS) -o $@ $^ \
		$(URCU_LIBS) $(CHECK_LIBS)

NOXSD_UNIT := check_proto check_store check_registry
UNIT_TESTS += $(addprefix $(TESTOUT)/,$(NOXSD_UNIT))
TSAN_TESTS += $(TESTOUT)/check_registry

# Integration tests on the simulator: shell scripts run from the source
# tree (they find the binaries through $NOXS_BUILD), C helpers built here.
NOXSD_IT_HELPERS := $(patsubst tests/integration/%.c,%,\
	$(wildcard tests/integration/noxsd-*.c))
NOXSD_IT_BINS := $(addprefix $(TESTOUT)/integration/,$(NOXSD_IT_HELPERS))
$(NOXSD_IT_BINS): $(TESTOUT)/integration/%: tests/integration/%.c \
		$(NOXS_PROTO_OBJ) $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(NOXSD_TEST_CFLAGS) $(BASE_LDFLAGS) -o $@ $< \
		$(NOXS_PROTO_OBJ) -L$(LIBOUT) -lnoxs $(XEN_LIBS)

NOXSD_IT_SCRIPTS := $(sort $(wildcard tests/integration/noxsd-*.sh))
NOXSD_IT_DEPS := $(NOXSD_IT_BINS) $(NOXSD_BIN) $(NOXSCTL_BIN)
INTEGRATION_TESTS += $(NOXSD_IT_SCRIPTS)
ALL_TARGETS += $(NOXSD_IT_DEPS)

# libFuzzer target for the wire-protocol decoder.
FUZZ_CC ?= clang
$(BUILD)/fuzz/fuzz_proto: tests/fuzz/fuzz_proto.c libnoxs/proto.c \
		libnoxs/proto.h include/noxs/abi.h include/noxs/noxs.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Iinclude -Ilibnoxs -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ tests/fuzz/fuzz_proto.c libnoxs/proto.c
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz_proto

# Build what the noxsd tests need: make noxsd-tests
noxsd-tests: $(addprefix $(TESTOUT)/,$(NOXSD_UNIT)) $(NOXSD_IT_DEPS) \
	$(SIM_TARGETS)
.PHONY: noxsd-tests
