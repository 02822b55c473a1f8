# libnoxs: the core library (libnoxs.so.1).
#
# Every libnoxs/*.c joins the library (the registry client and backend
# files included); symbols are hidden unless marked NOXS_EXPORT, and the
# version script exports the noxs_* names under NOXS_1.0.

LIBNOXS_SONAME := libnoxs.so.1
LIBNOXS_VERSION := $(NOXS_VERSION)
LIBNOXS_SRCS := $(sort $(wildcard libnoxs/*.c))
# common/parse.o: the one number parser; common/unixsock.o: connecting to
# noxsd (both hidden inside the library).
LIBNOXS_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(LIBNOXS_SRCS)) \
	$(OBJDIR)/common/parse.o $(OBJDIR)/common/unixsock.o
LIBNOXS_HEADERS := $(sort $(wildcard include/noxs/*.h))
# The device protocols (like Xen's public/io): <noxs/io/*.h>.
LIBNOXS_IO_HEADERS := $(sort $(wildcard include/noxs/io/*.h))
LIBNOXS := $(LIBOUT)/$(LIBNOXS_SONAME)

MODULE_CFLAGS_libnoxs := -fvisibility=hidden

# -z defs catches a missing symbol at link time; sanitizer runtimes are
# resolved from the executable, so it is left out under SAN.
LIBNOXS_LDFLAGS := -shared -Wl,-soname,$(LIBNOXS_SONAME) \
	-Wl,--version-script=libnoxs/libnoxs.map $(if $(SAN),,-Wl,-z,defs)

$(LIBNOXS): $(LIBNOXS_OBJS) libnoxs/libnoxs.map
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) $(LIBNOXS_LDFLAGS) -o $@ $(LIBNOXS_OBJS) $(XEN_LIBS)

$(LIBOUT)/libnoxs.so: $(LIBNOXS)
	ln -sf $(LIBNOXS_SONAME) $@

# Every public header compiles on its own, as C and as C++.
CXX ?= c++
$(BUILD)/stamp/headers: $(LIBNOXS_HEADERS) $(LIBNOXS_IO_HEADERS)
	@mkdir -p $(@D)
	@set -e; for h in $(LIBNOXS_HEADERS) $(LIBNOXS_IO_HEADERS); do \
		echo "  HDR   $$h"; \
		printf '#include <noxs/%s>\n' "$${h#include/noxs/}" | \
			$(CC) -std=c11 -Iinclude $(WARNINGS) -Werror -fsyntax-only -x c -; \
		printf '#include <noxs/%s>\n' "$${h#include/noxs/}" | \
			$(CXX) -std=c++11 -Iinclude -Wall -Wextra -Wpedantic -Werror \
			-fsyntax-only -x c++ -; \
	done
	@touch $@

# pkg-config file: generated for the build tree and again at install
# time, so that PREFIX/LIBDIR given to "make install" are the ones in it.
LIBNOXS_PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(LIBNOXS_VERSION)|'

$(LIBOUT)/noxs.pc: libnoxs/noxs.pc.in libnoxs/module.mk VERSION
	@mkdir -p $(@D)
	$(LIBNOXS_PC_SED) $< > $@

LIB_TARGETS += $(LIBNOXS) $(LIBOUT)/libnoxs.so
ALL_TARGETS += $(LIBNOXS) $(LIBOUT)/libnoxs.so $(LIBOUT)/noxs.pc \
	$(BUILD)/stamp/headers

install-libnoxs: $(LIBNOXS)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/noxs \
		$(DESTDIR)$(PKGCONFIGDIR)
	install -m 0755 $(LIBNOXS) $(DESTDIR)$(LIBDIR)/$(LIBNOXS_SONAME)
	ln -sf $(LIBNOXS_SONAME) $(DESTDIR)$(LIBDIR)/libnoxs.so
	install -m 0644 $(LIBNOXS_HEADERS) $(DESTDIR)$(INCLUDEDIR)/noxs/
	install -d $(DESTDIR)$(INCLUDEDIR)/noxs/io
	install -m 0644 $(LIBNOXS_IO_HEADERS) $(DESTDIR)$(INCLUDEDIR)/noxs/io/
	$(LIBNOXS_PC_SED) libnoxs/noxs.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/noxs.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/noxs.pc

INSTALL_TARGETS += install-libnoxs
INSTALL_FILES += $(LIBDIR)/$(LIBNOXS_SONAME) $(LIBDIR)/libnoxs.so \
	$(PKGCONFIGDIR)/noxs.pc \
	$(patsubst include/noxs/%,$(INCLUDEDIR)/noxs/%,$(LIBNOXS_HEADERS) \
		$(LIBNOXS_IO_HEADERS))
# io/ first: a directory is removed only once empty.
INSTALL_OWN_DIRS += $(INCLUDEDIR)/noxs/io $(INCLUDEDIR)/noxs
.PHONY: install-libnoxs
