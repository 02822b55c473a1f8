# noxsd: the registry daemon (worker and page keeper, one binary).
# The wire protocol's and the service manager's objects (libnoxs/proto.o,
# svc.o, hidden inside libnoxs.so) are linked in directly; the page
# functions come from libnoxs.so.

NOXSD_SRCS := $(sort $(wildcard noxsd/*.c))
NOXSD_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(NOXSD_SRCS))
NOXSD_BIN := $(BINOUT)/noxsd
NOXS_PROTO_OBJ := $(OBJDIR)/libnoxs/proto.o $(OBJDIR)/libnoxs/svc.o

MODULE_CFLAGS_noxsd := -Ilibnoxs

# domwatch.c reads the domain list through Debian's libxenctrl, as
# xenstored does; xenctrl.h needs GNU C (anonymous unions).
$(OBJDIR)/noxsd/domwatch.o: BASE_CFLAGS += -std=gnu11
NOXSD_XEN_LIBS := $(XEN_LIBS) -lxenctrl

$(NOXSD_BIN): $(NOXSD_OBJS) $(NOXS_PROTO_OBJ) $(LIBOUT)/libnoxs.so $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(NOXSD_OBJS) $(NOXS_PROTO_OBJ) \
		$(COMMON_LIB) -L$(LIBOUT) -lnoxs $(URCU_LIBS) $(NOXSD_XEN_LIBS)

ALL_TARGETS += $(NOXSD_BIN)

# systemd units: @SBINDIR@ becomes the installed path (noxsd's unit here,
# the drivers' in drivers/*/module.mk).
NOXS_UNIT_SED = sed -e 's|@SBINDIR@|$(SBINDIR)|g'

install-noxsd: $(NOXSD_BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(NOXSD_BIN) $(DESTDIR)$(SBINDIR)/noxsd
	install -m 0644 noxsd/noxsd.8 $(DESTDIR)$(MANDIR)/man8/noxsd.8
	$(NOXS_UNIT_SED) noxsd/noxsd.service.in \
		> $(DESTDIR)$(SYSTEMDDIR)/noxsd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/noxsd.service

INSTALL_TARGETS += install-noxsd
INSTALL_FILES += $(SBINDIR)/noxsd $(MANDIR)/man8/noxsd.8 \
	$(SYSTEMDDIR)/noxsd.service
.PHONY: install-noxsd
