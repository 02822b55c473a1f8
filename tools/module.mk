# tools: noxsctl, the toolstack command line.

NOXSCTL_BIN := $(BINOUT)/noxsctl

$(NOXSCTL_BIN): $(OBJDIR)/tools/noxsctl.o $(LIBOUT)/libnoxs.so $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $< $(COMMON_LIB) -L$(LIBOUT) -lnoxs $(XEN_LIBS)

ALL_TARGETS += $(NOXSCTL_BIN)

install-tools: $(NOXSCTL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(NOXSCTL_BIN) $(DESTDIR)$(BINDIR)/noxsctl
	install -m 0644 tools/noxsctl.8 $(DESTDIR)$(MANDIR)/man8/noxsctl.8

INSTALL_TARGETS += install-tools
INSTALL_FILES += $(BINDIR)/noxsctl $(MANDIR)/man8/noxsctl.8
.PHONY: install-tools
