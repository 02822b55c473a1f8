# The console and blk reference drivers (issue 6): programs, man pages,
# tests. Kept in one file so that these drivers never touch the shared
# backends/ and frontends/ module files; tests/module.mk includes it.

# Logging, options and detaching come from common/ ($(COMMON_LIB)); the
# ring protocols are the installed headers <noxs/io/blkif.h> and
# <noxs/io/consif.h>, so neither half reaches into the other's folder.
DRV_CFLAGS := -Ibackends/blk -Ifrontends/blk
$(OBJDIR)/backends/blk/%.o: BASE_CFLAGS += -Ibackends/blk
$(OBJDIR)/frontends/blk/%.o: BASE_CFLAGS += -Ifrontends/blk
$(OBJDIR)/tests/integration/blk_%.o: BASE_CFLAGS += $(DRV_CFLAGS)
$(OBJDIR)/bench/blk.o $(OBJDIR)/bench/console.o: BASE_CFLAGS += $(DRV_CFLAGS)

DRV_LINK = $(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) $(COMMON_LIB) \
	-L$(LIBOUT) -lnoxs $(XEN_LIBS)

BLKFRONT_OBJS := $(OBJDIR)/frontends/blk/blkfront.o
BLKREQ_OBJS := $(OBJDIR)/backends/blk/blkreq.o
DRVLOG_OBJS := $(COMMON_LIB)

BLK_BACK := $(BINOUT)/noxs-blk-back
BLK_CLI := $(BINOUT)/noxs-blk
CONS_BACK := $(BINOUT)/noxs-console-back
CONS_FRONT := $(BINOUT)/noxs-console-front
CONS_CLIENT := $(BINOUT)/noxs-console
DRIVER_BINS := $(BLK_BACK) $(BLK_CLI) $(CONS_BACK) $(CONS_FRONT) $(CONS_CLIENT)

# noxs-blk-back's files: control, restarts, ring thread, I/O, grant cache.
BLKBACK_OBJS := $(addprefix $(OBJDIR)/backends/blk/,blkback.o store.o ring.o \
	io.o gcache.o)
# svc.o: the service manager's fd store, as for noxsd (hidden in libnoxs.so).
$(OBJDIR)/backends/blk/store.o: BASE_CFLAGS += -Ilibnoxs
$(BLK_BACK): $(BLKBACK_OBJS) $(BLKREQ_OBJS) $(DRVLOG_OBJS) \
		$(OBJDIR)/libnoxs/svc.o $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK) $(URING_LIBS)

$(BLK_CLI): $(OBJDIR)/frontends/blk/noxs-blk.o $(BLKFRONT_OBJS) $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

$(CONS_BACK): $(OBJDIR)/backends/console/consback.o $(DRVLOG_OBJS) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

$(CONS_FRONT): $(OBJDIR)/frontends/console/consfront.o $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

# The client needs neither libnoxs nor Xen: it only talks to a socket.
$(CONS_CLIENT): $(OBJDIR)/backends/console/noxs-console.o $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^

ALL_TARGETS += $(DRIVER_BINS)
datadrivers: $(DRIVER_BINS)
.PHONY: datadrivers

# ---- unit tests ----
$(eval $(call unit_test,check_blkring,$(BLKREQ_OBJS),,$(DRV_CFLAGS)))

# The grant cache alone, its grant mapping calls stubbed by the test.
$(eval $(call unit_test,check_blkgcache,$(OBJDIR)/backends/blk/gcache.o,,\
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
	blk-crash.sh blk-evict.sh blk-hostile.sh blk-io.sh blk-rogrant.sh \
	lifecycle-blk.sh console-attach.sh console-noxsd-stopped.sh console-stream.sh)
INTEGRATION_TESTS += $(DRV_IT_SCRIPTS)
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

install-datadrivers: $(DRIVER_BINS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(BLK_BACK) $(CONS_BACK) $(CONS_FRONT) $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(BLK_CLI) $(CONS_CLIENT) $(DESTDIR)$(BINDIR)/
	install -m 0644 backends/blk/noxs-blk-back.8 \
		backends/console/noxs-console-back.8 \
		frontends/console/noxs-console-front.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 frontends/blk/noxs-blk.1 backends/console/noxs-console.1 \
		$(DESTDIR)$(MANDIR)/man1/
	$(NOXS_UNIT_SED) backends/blk/noxs-blk-back.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-blk-back.service
	$(NOXS_UNIT_SED) backends/console/noxs-console-back.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-console-back.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxs-blk-back.service \
		$(DESTDIR)$(SYSTEMDDIR)/noxs-console-back.service
INSTALL_TARGETS += install-datadrivers
INSTALL_FILES += $(addprefix $(SBINDIR)/,noxs-blk-back noxs-console-back \
		noxs-console-front) \
	$(addprefix $(BINDIR)/,noxs-blk noxs-console) \
	$(addprefix $(MANDIR)/man8/,noxs-blk-back.8 noxs-console-back.8 \
		noxs-console-front.8) \
	$(addprefix $(MANDIR)/man1/,noxs-blk.1 noxs-console.1) \
	$(addprefix $(SYSTEMDDIR)/,noxs-blk-back.service noxs-console-back.service)
.PHONY: install-datadrivers

# libFuzzer target for the blk request validation.
$(eval $(call fuzz_target,fuzz_blkreq,backends/blk/blkreq.c,\
	backends/blk/blkreq.h include/noxs/io/blkif.h common/spin.h,\
	-I. -Ibackends/blk))
