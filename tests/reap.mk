# Domain death: noxsd reaps a domain the hypervisor (here the simulator)
# reports dead, backends release its devices, watchers and compat-xs's
# @releaseDomain hear of it (a poller of xs_fileno too), and a reused
# domid starts clean.
# (tests/module.mk includes every tests/*.mk.)

$(TESTOUT)/integration/xswatch: $(OBJDIR)/tests/integration/xswatch.o
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore

REAP_TESTS := tests/integration/domain-death.sh
$(REAP_TESTS): $(TESTOUT)/integration/xswatch $(COMPAT_XS) \
	$(BINOUT)/noxs-sysctl-back $(BINOUT)/noxs-sysctl-front \
	$(BINOUT)/noxsd $(BINOUT)/noxsctl $(SIMOUT)/noxs-simctl \
	$(TESTOUT)/integration/noxsd-probe $(TESTOUT)/compat/xsfileno

INTEGRATION_TESTS += $(REAP_TESTS)
ALL_TARGETS += $(TESTOUT)/integration/xswatch

# The simulator's side: VIRQ_DOM_EXC, the domain list (libxenctrl),
# noxs-simctl destroy, a reused domid. xenctrl.h needs GNU C.
$(eval $(call unit_test,check_sim_life,$(SIMSTAT_LIB) $(SIMOUT)/noxs-simctl,\
	$(XEN_LIBS) -lxenctrl,-std=gnu11))
