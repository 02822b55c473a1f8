# Reference frontends built on libnoxs (the guest side of each device).

SYSCTL_FRONT := $(BINOUT)/noxs-sysctl-front
SYSCTL_FRONT_OBJS := $(OBJDIR)/frontends/sysctl/sysctl-front.o

$(SYSCTL_FRONT): $(SYSCTL_FRONT_OBJS) $(LIBOUT)/libnoxs.so $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(SYSCTL_FRONT_OBJS) $(COMMON_LIB) -L$(LIBOUT) -lnoxs \
		$(XEN_LIBS)

ALL_TARGETS += $(SYSCTL_FRONT)

install-frontends: $(SYSCTL_FRONT)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(SYSCTL_FRONT) $(DESTDIR)$(SBINDIR)/
	install -m 0644 frontends/sysctl/noxs-sysctl-front.8 $(DESTDIR)$(MANDIR)/man8/

INSTALL_TARGETS += install-frontends
INSTALL_FILES += $(SBINDIR)/noxs-sysctl-front $(MANDIR)/man8/noxs-sysctl-front.8
.PHONY: install-frontends
