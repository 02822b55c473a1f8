# Operator-facing behaviour: daemons that fail loudly and log for the
# journal, commands that say what is wrong, the README's recipe.
# (tests/module.mk includes every tests/*.mk.)

OP_TESTS := $(sort $(wildcard tests/integration/op-*.sh))
$(OP_TESTS): $(NOXSD_BIN) $(NOXSCTL_BIN) $(SYSCTL_BACK) $(SYSCTL_FRONT) \
	$(DRIVER_BINS) $(SIM_TARGETS) $(LIB_TARGETS)
INTEGRATION_TESTS += $(OP_TESTS)
