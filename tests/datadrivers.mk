# Tests of the console and blk drivers (the programs are built by
# drivers/*/module.mk). Their sources include the blk driver's private
# headers (blkfront.h, blkreq.h) from drivers/blk.
DRV_CFLAGS := -Idrivers/blk
$(OBJDIR)/tests/integration/blk_%.o: BASE_CFLAGS += $(DRV_CFLAGS)
$(OBJDIR)/bench/blk.o $(OBJDIR)/bench/console.o: BASE_CFLAGS += $(DRV_CFLAGS)

# ---- unit tests ----
$(eval $(call unit_test,check_blkring,$(BLKREQ_OBJS),,$(DRV_CFLAGS)))

# The grant cache alone, its grant mapping calls stubbed by the test.
$(eval $(call unit_test,check_blkgcache,$(OBJDIR)/drivers/blk/gcache.o,,\
	$(DRV_CFLAGS)))

# ---- integration tests (shell scripts on the simulator + C helpers) ----
DRV_IT := $(TESTOUT)/integration
$(DRV_IT)/blk_stress $(DRV_IT)/blk_hostile: $(COMMON_LIB)
$(DRV_IT)/blk_stress: $(OBJDIR)/tests/integration/blk_stress.o \
		$(BLKFRONT_OBJS) $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

$(DRV_IT)/blk_hostile: $(OBJDIR)/tests/integration/blk_hostile.o \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

DRV_IT_HELPERS := $(DRV_IT)/blk_stress $(DRV_IT)/blk_hostile
DRV_IT_SCRIPTS := $(addprefix tests/integration/,blk-beside-console.sh \
	blk-crash.sh blk-evict.sh blk-hostile.sh blk-io.sh blk-many.sh blk-rogrant.sh \
	lifecycle-blk.sh console-attach.sh console-many.sh console-noxsd-stopped.sh \
	console-stream.sh)
INTEGRATION_TESTS += $(DRV_IT_SCRIPTS)
# The blk backend's threads (ring, event, I/O workers) under TSan.
TSAN_TESTS += tests/integration/blk-io.sh tests/integration/blk-many.sh
ALL_TARGETS += $(DRV_IT_HELPERS)
# The scripts also need the daemon, the toolstack and the simulator.
DRV_IT_DEPS := $(DRIVER_BINS) $(DRV_IT_HELPERS) $(NOXSD_BIN) $(NOXSCTL_BIN) \
	$(SIM_TARGETS) $(LIB_TARGETS)
datadrivers-check: $(DRV_IT_DEPS) $(TESTOUT)/check_blkring $(TESTOUT)/check_blkgcache
	@$(RUN_ENV) scripts/run-tests.sh $(TESTOUT)/check_blkring \
		$(TESTOUT)/check_blkgcache $(DRV_IT_SCRIPTS)
.PHONY: datadrivers-check
# So that "make run T=tests/integration/blk-io.sh" builds them too.
$(DRV_IT_SCRIPTS): $(DRV_IT_DEPS)

# libFuzzer target for the blk request validation.
$(eval $(call fuzz_target,fuzz_blkreq,drivers/blk/blkreq.c,\
	drivers/blk/blkreq.h include/noxs/io/blkif.h common/spin.h,\
	-I. -Idrivers/blk))
