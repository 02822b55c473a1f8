# Simulator tests (see docs/SIM.md). Each links Debian's Xen libraries and
# runs on build/sim through RUN_ENV; the stat library checks for leaks.
SIM_UNIT_TESTS := check_sim_evtchn check_sim_gnttab check_sim_foreignmem \
	check_sim_proc check_sim_scale check_sim_threads
SIM_TSAN_TESTS := check_sim_threads

$(foreach t,$(SIM_UNIT_TESTS),$(eval $(call unit_test,$(t),$(SIMSTAT_LIB),\
	$(XEN_LIBS))))
TSAN_TESTS += $(addprefix $(TESTOUT)/,$(SIM_TSAN_TESTS))
