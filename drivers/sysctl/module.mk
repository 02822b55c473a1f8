# The sysctl device (shutdown, reboot, suspend requests to a guest).

SYSCTL_BACK := $(BINOUT)/noxs-sysctl-back
SYSCTL_FRONT := $(BINOUT)/noxs-sysctl-front

$(SYSCTL_BACK): $(OBJDIR)/drivers/sysctl/sysctl-back.o $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

$(SYSCTL_FRONT): $(OBJDIR)/drivers/sysctl/sysctl-front.o $(COMMON_LIB) \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(DRV_LINK)

DRIVER_BINS += $(SYSCTL_BACK) $(SYSCTL_FRONT)

install-sysctl: $(SYSCTL_BACK) $(SYSCTL_FRONT)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(SYSCTL_BACK) $(SYSCTL_FRONT) $(DESTDIR)$(SBINDIR)/
	install -m 0644 drivers/sysctl/noxs-sysctl-back.8 \
		drivers/sysctl/noxs-sysctl-front.8 $(DESTDIR)$(MANDIR)/man8/
	$(NOXS_UNIT_SED) drivers/sysctl/noxs-sysctl-back.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-sysctl-back.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxs-sysctl-back.service

INSTALL_TARGETS += install-sysctl
INSTALL_FILES += $(SBINDIR)/noxs-sysctl-back $(SBINDIR)/noxs-sysctl-front \
	$(MANDIR)/man8/noxs-sysctl-back.8 $(MANDIR)/man8/noxs-sysctl-front.8 \
	$(SYSTEMDDIR)/noxs-sysctl-back.service
.PHONY: install-sysctl
