# Files for the host around the programs: the kernel modules to load at
# boot and the console logs' rotation (docs/NOXSD.md, "Installing").

install-dist: dist/modules-load.conf dist/logrotate
	install -d $(DESTDIR)$(MODULESLOADDIR) $(DESTDIR)$(LOGROTATEDIR)
	install -m 0644 dist/modules-load.conf $(DESTDIR)$(MODULESLOADDIR)/noxs.conf
	install -m 0644 dist/logrotate $(DESTDIR)$(LOGROTATEDIR)/noxs

INSTALL_TARGETS += install-dist
INSTALL_FILES += $(MODULESLOADDIR)/noxs.conf $(LOGROTATEDIR)/noxs
.PHONY: install-dist
