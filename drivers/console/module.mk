# The console device: the backend (one log and socket per console), the
# guest's frontend, and noxs-console, the client an operator attaches
# with (it needs neither libnoxs nor Xen: it only talks to a socket).

CONS_BACK := $(BINOUT)/noxs-console-back
CONS_FRONT := $(BINOUT)/noxs-console-front
CONS_CLIENT := $(BINOUT)/noxs-console
# The guest side of a connection, also linked by the bring-up benchmark.
CONSRING_OBJS := $(OBJDIR)/drivers/console/consring.o

$(CONS_BACK): $(OBJDIR)/drivers/console/consback.o $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

$(CONS_FRONT): $(OBJDIR)/drivers/console/consfront.o $(CONSRING_OBJS) \
		$(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

$(CONS_CLIENT): $(OBJDIR)/drivers/console/noxs-console.o $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^

DRIVER_BINS += $(CONS_BACK) $(CONS_FRONT) $(CONS_CLIENT)

install-console: $(CONS_BACK) $(CONS_FRONT) $(CONS_CLIENT)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(CONS_BACK) $(CONS_FRONT) $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(CONS_CLIENT) $(DESTDIR)$(BINDIR)/
	install -m 0644 drivers/console/noxs-console-back.8 \
		drivers/console/noxs-console-front.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 drivers/console/noxs-console.1 $(DESTDIR)$(MANDIR)/man1/
	$(NOXS_UNIT_SED) drivers/console/noxs-console-back.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-console-back.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxs-console-back.service

INSTALL_TARGETS += install-console
INSTALL_FILES += $(SBINDIR)/noxs-console-back $(SBINDIR)/noxs-console-front \
	$(BINDIR)/noxs-console $(MANDIR)/man8/noxs-console-back.8 \
	$(MANDIR)/man8/noxs-console-front.8 $(MANDIR)/man1/noxs-console.1 \
	$(SYSTEMDDIR)/noxs-console-back.service
.PHONY: install-console
