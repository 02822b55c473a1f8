# Integration tests of the reference drivers (sysctl) and of the device
# lifecycle, crash safety and permissions they exercise. Shell tests run
# as they are; their C probes are built first (a script depends on them).
# (tests/module.mk includes every tests/*.mk.)

DRIVER_TESTS := sysctl-shutdown lifecycle-sysctl remove-stuck perm-isolation \
	backend-restart backend-restart-console backend-restart-blk \
	crash-noxsd crash-peers hostile-torn hostile-flip \
	lifecycle-example lifecycle-console lifecycle-sysctl-walk
DRIVER_PROBES := perm-probe crash-probe hostile-front

define driver_probe_rules
$$(TESTOUT)/$(1): $$(OBJDIR)/tests/integration/$(1).o $$(LIBOUT)/libnoxs.so
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_LDFLAGS) -o $$@ $$< -L$$(LIBOUT) -lnoxs $$(XEN_LIBS)
endef
$(foreach p,$(DRIVER_PROBES),$(eval $(call driver_probe_rules,$(p))))

# The scripts need the drivers, the probes and noxsctl/noxsd built.
$(foreach t,$(DRIVER_TESTS),tests/integration/$(t).sh): \
	$(addprefix $(TESTOUT)/,$(DRIVER_PROBES)) \
	$(BINOUT)/noxs-sysctl-back $(BINOUT)/noxs-sysctl-front \
	$(BINOUT)/noxsd $(BINOUT)/noxsctl $(SIMOUT)/noxs-simstat

INTEGRATION_TESTS += $(foreach t,$(DRIVER_TESTS),tests/integration/$(t).sh)

# The shared driver lifecycle, against the example and console drivers.
tests/integration/lifecycle-example.sh: $(EXAMPLE_BINS)
tests/integration/lifecycle-console.sh: $(BINOUT)/noxs-console-back \
	$(BINOUT)/noxs-console-front

# A backend's restart is played under the fd-store player.
tests/integration/backend-restart.sh: $(TESTOUT)/integration/noxsd-fdstore
tests/integration/backend-restart-console.sh: \
	$(TESTOUT)/integration/noxsd-fdstore $(BINOUT)/noxs-console-back \
	$(BINOUT)/noxs-console-front $(BINOUT)/noxs-console
tests/integration/backend-restart-blk.sh: \
	$(TESTOUT)/integration/noxsd-fdstore $(BINOUT)/noxs-blk-back \
	$(TESTOUT)/integration/blk_stress $(TESTOUT)/integration/blk_hostile

# The console test of a stopped noxsd (registered with the console tests)
# drives its hostile guests with the same probe.
tests/integration/console-noxsd-stopped.sh: $(TESTOUT)/hostile-front
