# Operator-facing behaviour: daemons that fail loudly and log for the
# journal, commands that say what is wrong, the README's recipe.
# (tests/module.mk includes every tests/*.mk.)

OP_TESTS := $(addprefix tests/integration/,op-commands.sh op-daemon-start.sh \
	op-identity.sh op-readme.sh)
$(OP_TESTS): $(NOXSD_BIN) $(NOXSCTL_BIN) $(SYSCTL_BACK) $(SYSCTL_FRONT) \
	$(DRIVER_BINS) $(SIM_TARGETS) $(LIB_TARGETS) $(COMPAT_XS) \
	$(TESTOUT)/integration/xswatch
INTEGRATION_TESTS += $(OP_TESTS)

# The one number parser and noxs_self_domid (Check).
$(eval $(call unit_test,check_parse,$(COMMON_LIB) $(LIBOUT)/libnoxs.so,\
	-L$(LIBOUT) -lnoxs $(XEN_LIBS)))
