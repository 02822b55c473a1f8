# Simulator tests (see docs/SIM.md). Each links Debian's Xen libraries and
# runs on build/sim through RUN_ENV; the stat library checks for leaks.
SIM_UNIT_TESTS := check_sim_evtchn check_sim_gnttab check_sim_foreignmem \
	check_sim_proc check_sim_scale check_sim_threads
SIM_TSAN_TESTS := check_sim_threads

$(OBJDIR)/tests/unit/check_sim_%.o: MODULE_CFLAGS_tests += $(CHECK_CFLAGS) -I.

$(TESTOUT)/check_sim_%: $(OBJDIR)/tests/unit/check_sim_%.o $(SIMSTAT_LIB)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(BASE_LDFLAGS) $(XEN_LIBS) $(CHECK_LIBS)

UNIT_TESTS += $(addprefix $(TESTOUT)/,$(SIM_UNIT_TESTS))
TSAN_TESTS += $(addprefix $(TESTOUT)/,$(SIM_TSAN_TESTS))
