# Tests of noxsd, the wire protocol, libnoxs's client and backend, and
# noxsctl. (tests/module.mk includes every tests/*.mk.)

NOXSD_TEST_CFLAGS = $(CHECK_CFLAGS) -Ilibnoxs -Inoxsd

$(eval $(call unit_test,check_proto,$(NOXS_PROTO_OBJ),,-Ilibnoxs -Inoxsd))
$(eval $(call unit_test,check_store,$(OBJDIR)/noxsd/store.o \
	$(OBJDIR)/common/log.o,,-Ilibnoxs -Inoxsd))
$(eval $(call unit_test,check_registry,$(OBJDIR)/noxsd/registry.o \
	$(OBJDIR)/common/log.o,$(URCU_LIBS),-Ilibnoxs -Inoxsd))
NOXSD_UNIT := check_proto check_store check_registry
TSAN_TESTS += $(TESTOUT)/check_registry

# Integration tests on the simulator: shell scripts run from the source
# tree (they find the binaries through $NOXS_BUILD), C helpers built here.
NOXSD_IT_HELPERS := noxsd-evilbe noxsd-fdstore noxsd-flood noxsd-memprobe \
	noxsd-mkrec noxsd-probe noxsd-testbe
NOXSD_IT_BINS := $(addprefix $(TESTOUT)/integration/,$(NOXSD_IT_HELPERS))
$(NOXSD_IT_BINS): $(TESTOUT)/integration/%: tests/integration/%.c \
		$(NOXS_PROTO_OBJ) $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(NOXSD_TEST_CFLAGS) $(BASE_LDFLAGS) -o $@ $< \
		$(NOXS_PROTO_OBJ) -L$(LIBOUT) -lnoxs $(XEN_LIBS)

NOXSD_IT_SCRIPTS := $(addprefix tests/integration/,noxsd-basic.sh \
	noxsd-crash.sh noxsd-deferclose.sh noxsd-keeper.sh noxsd-limits.sh \
	noxsd-malformed.sh noxsd-memory.sh noxsd-notify.sh noxsd-pagewrite.sh \
	noxsd-perm.sh noxsd-restart.sh \
	noxsd-statedir.sh noxsd-store-damage.sh noxsd-store-enospc.sh \
	noxsd-store-invalid.sh noxsd-timeout.sh)
NOXSD_IT_DEPS := $(NOXSD_IT_BINS) $(NOXSD_BIN) $(NOXSCTL_BIN)
INTEGRATION_TESTS += $(NOXSD_IT_SCRIPTS)
ALL_TARGETS += $(NOXSD_IT_DEPS)

# libFuzzer target for the wire-protocol decoder.
$(eval $(call fuzz_target,fuzz_proto,libnoxs/proto.c,libnoxs/proto.h \
	include/noxs/abi.h include/noxs/noxs.h,-Ilibnoxs))

# Build what the noxsd tests need: make noxsd-tests
noxsd-tests: $(addprefix $(TESTOUT)/,$(NOXSD_UNIT)) $(NOXSD_IT_DEPS) \
	$(SIM_TARGETS)
.PHONY: noxsd-tests
