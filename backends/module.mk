# Reference backends built on libnoxs. One binary per device type, each
# serving every guest's devices of that type from one process.

SYSCTL_BACK := $(BINOUT)/noxs-sysctl-back
SYSCTL_BACK_OBJS := $(OBJDIR)/backends/sysctl/sysctl-back.o

$(SYSCTL_BACK): $(SYSCTL_BACK_OBJS) $(LIBOUT)/libnoxs.so $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(SYSCTL_BACK_OBJS) $(COMMON_LIB) -L$(LIBOUT) -lnoxs \
		$(XEN_LIBS)

ALL_TARGETS += $(SYSCTL_BACK)

install-backends: $(SYSCTL_BACK)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(SYSCTL_BACK) $(DESTDIR)$(SBINDIR)/
	install -m 0644 backends/sysctl/noxs-sysctl-back.8 $(DESTDIR)$(MANDIR)/man8/
	$(NOXS_UNIT_SED) backends/sysctl/noxs-sysctl-back.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-sysctl-back.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxs-sysctl-back.service

INSTALL_TARGETS += install-backends
INSTALL_FILES += $(SBINDIR)/noxs-sysctl-back $(MANDIR)/man8/noxs-sysctl-back.8 \
	$(SYSTEMDDIR)/noxs-sysctl-back.service
.PHONY: install-backends
