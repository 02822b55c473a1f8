# Operator-facing behaviour: daemons that fail loudly and log for the
# journal, commands that say what is wrong, the README's recipe.
# (tests/module.mk includes every tests/*.mk.)

OP_TESTS := $(sort $(wildcard tests/integration/op-*.sh))
$(OP_TESTS): $(NOXSD_BIN) $(NOXSCTL_BIN) $(SYSCTL_BACK) $(SYSCTL_FRONT) \
	$(DRIVER_BINS) $(SIM_TARGETS) $(LIB_TARGETS) $(COMPAT_XS) \
	$(TESTOUT)/integration/xswatch
INTEGRATION_TESTS += $(OP_TESTS)

# The one number parser and noxs_self_domid (Check).
$(OBJDIR)/tests/unit/check_parse.o: BASE_CFLAGS += $(CHECK_CFLAGS)
$(TESTOUT)/check_parse: $(OBJDIR)/tests/unit/check_parse.o $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $< $(COMMON_LIB) -L$(LIBOUT) -lnoxs \
		$(XEN_LIBS) $(CHECK_LIBS)
UNIT_TESTS += $(TESTOUT)/check_parse
