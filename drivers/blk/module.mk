# The blk device: noxs-blk-back (control, restarts, ring thread, I/O,
# grant cache) and noxs-blk, the guest's user-space frontend and its C
# API (blkfront.h), which the tests and benchmarks link too.

BLK_BACK := $(BINOUT)/noxs-blk-back
BLK_CLI := $(BINOUT)/noxs-blk
BLKFRONT_OBJS := $(OBJDIR)/drivers/blk/blkfront.o
BLKREQ_OBJS := $(OBJDIR)/drivers/blk/blkreq.o
BLKBACK_OBJS := $(addprefix $(OBJDIR)/drivers/blk/,blkback.o store.o ring.o \
	io.o gcache.o events.o)

# svc.o: the service manager's fd store, as for noxsd (hidden in libnoxs.so).
$(OBJDIR)/drivers/blk/store.o: BASE_CFLAGS += -Ilibnoxs
$(BLK_BACK): $(BLKBACK_OBJS) $(BLKREQ_OBJS) $(COMMON_LIB) \
		$(OBJDIR)/libnoxs/svc.o $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK) $(URING_LIBS)

$(BLK_CLI): $(OBJDIR)/drivers/blk/noxs-blk.o $(BLKFRONT_OBJS) $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

DRIVER_BINS += $(BLK_BACK) $(BLK_CLI)

install-blk: $(BLK_BACK) $(BLK_CLI)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(BLK_BACK) $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(BLK_CLI) $(DESTDIR)$(BINDIR)/
	install -m 0644 drivers/blk/noxs-blk-back.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 drivers/blk/noxs-blk.1 $(DESTDIR)$(MANDIR)/man1/
	$(NOXS_UNIT_SED) drivers/blk/noxs-blk-back.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-blk-back.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxs-blk-back.service

INSTALL_TARGETS += install-blk
INSTALL_FILES += $(SBINDIR)/noxs-blk-back $(BINDIR)/noxs-blk \
	$(MANDIR)/man8/noxs-blk-back.8 $(MANDIR)/man1/noxs-blk.1 \
	$(SYSTEMDDIR)/noxs-blk-back.service
.PHONY: install-blk
