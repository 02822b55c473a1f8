# compat-xs: a drop-in libxenstore.so.4 on noxs device pages
# (docs/COMPAT.md). Built into its own directory, $(LIBOUT)/compat-xs, so
# it replaces Debian's only where LD_LIBRARY_PATH names that directory.

COMPAT_XS_DIR := $(LIBOUT)/compat-xs
COMPAT_XS := $(COMPAT_XS_DIR)/libxenstore.so.4
COMPAT_XS_SRCS := compat-xs/path.c compat-xs/view.c compat-xs/ctx.c \
	compat-xs/change.c compat-xs/xs.c compat-xs/dir.c \
	compat-xs/watch.c compat-xs/special.c compat-xs/tx.c compat-xs/domain.c \
	compat-xs/wire.c compat-xs/route.c compat-xs/xsd.c \
	compat-xs/hash.c compat-xs/group.c \
	compat-xs/control.c \
	compat-xs/lstore.c compat-xs/lstore_env.c compat-xs/lstore_tx.c \
	compat-xs/lstore_watch.c \
	compat-xs/xsringd_lock.c
# common/unixsock.o: connecting to xenstored (hidden inside the library).
COMPAT_XS_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(COMPAT_XS_SRCS)) \
	$(OBJDIR)/common/unixsock.o

# LMDB (Debian's liblmdb-dev) holds the local store (docs/COMPAT.md).
LMDB_CFLAGS = $(shell $(PKG_CONFIG) --cflags lmdb 2>/dev/null)
LMDB_LIBS = $(shell $(PKG_CONFIG) --libs lmdb 2>/dev/null || echo -llmdb)

MODULE_CFLAGS_compat-xs := -fvisibility=hidden $(LMDB_CFLAGS)

$(COMPAT_XS): $(COMPAT_XS_OBJS) compat-xs/libxenstore.map $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -shared -Wl,-soname,libxenstore.so.4 \
		-Wl,--version-script=compat-xs/libxenstore.map \
		$(if $(SAN),,-Wl,-z,defs) -o $@ $(COMPAT_XS_OBJS) \
		-L$(LIBOUT) -lnoxs $(LMDB_LIBS)
	ln -sf libxenstore.so.4 $(COMPAT_XS_DIR)/libxenstore.so

ALL_TARGETS += $(COMPAT_XS)
LIB_TARGETS += $(COMPAT_XS)

# Installed beside, never over, the system's libxenstore: legacy programs
# opt in with LD_LIBRARY_PATH=$(LIBDIR)/noxs/compat-xs (docs/COMPAT.md).
install-compat-xs: $(COMPAT_XS)
	install -d $(DESTDIR)$(LIBDIR)/noxs/compat-xs
	install -m 0755 $(COMPAT_XS) $(DESTDIR)$(LIBDIR)/noxs/compat-xs/libxenstore.so.4

INSTALL_TARGETS += install-compat-xs
INSTALL_FILES += $(LIBDIR)/noxs/compat-xs/libxenstore.so.4
# Child before parent: uninstall removes them in this order.
INSTALL_OWN_DIRS += $(LIBDIR)/noxs/compat-xs $(LIBDIR)/noxs
.PHONY: install-compat-xs

# noxs-xsringd: guests' XenStore rings answered from the local store on a
# noxs-only dom0 (docs/XSRINGD.md). The store's code is linked in (its
# symbols are hidden in the library).
XSRINGD := $(BINOUT)/noxs-xsringd
XSRINGD_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,compat-xs/xsringd.c compat-xs/xsringd_dom.c \
	compat-xs/xsringd_rec.c compat-xs/xsringd_serve.c compat-xs/xsringd_sock.c \
	compat-xs/xsringd_ring.c compat-xs/xsringd_lock.c compat-xs/lstore.c \
	compat-xs/lstore_env.c compat-xs/lstore_tx.c compat-xs/lstore_watch.c \
	compat-xs/wire.c compat-xs/xsd.c)

$(XSRINGD): $(XSRINGD_OBJS) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(XSRINGD_OBJS) $(COMMON_LIB) $(LMDB_LIBS) $(XEN_LIBS)

ALL_TARGETS += $(XSRINGD)

install-xsringd: $(XSRINGD)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(XSRINGD) $(DESTDIR)$(SBINDIR)/
	install -m 0644 compat-xs/noxs-xsringd.8 $(DESTDIR)$(MANDIR)/man8/
	$(NOXS_UNIT_SED) compat-xs/noxs-xsringd.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxs-xsringd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxs-xsringd.service

INSTALL_TARGETS += install-xsringd
INSTALL_FILES += $(SBINDIR)/noxs-xsringd $(MANDIR)/man8/noxs-xsringd.8 \
	$(SYSTEMDDIR)/noxs-xsringd.service
.PHONY: install-xsringd
