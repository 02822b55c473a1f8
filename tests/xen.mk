# check-xen: boot real Xen 4.17 (Debian's packages) under QEMU with a PV
# dom0 and a PV guest, and run noxs across them. See docs/XEN.md.
#
#   make check-xen               the whole lane (downloads cached in build/xen)
#   make check-xen XEN_NOXS=0    only the Xen interface checks, without noxs
#   make xen-initrd              build the images without booting
#
#   make check-xen XL_LIB=debian the xl stages on Debian's libxenstore
#                                (default compat: compat-xs's)
#   make check-xen XL_NOXS_GUEST=0  without the noxs guest created by xl
#   make check-xen XL_STAGES=0   without the xl stages
#   make check-xen XEN_LANES=mixed   only the first boot (default: also
#                                the second, a dom0 with no xenstored,
#                                tests/xen/noxs-only.sh, when the stages
#                                run on compat-xs)
#   make check-xen-noxs-only     only that second boot
#
# Env for tests/xen/boot.sh: XEN_TIMEOUT, QEMU_CPU, QEMU_SMP, QEMU_ACCEL.

XEN_DIR ?= build/xen
XEN_PROGDIR := $(BUILD)/xen-progs
XEN_NOXS ?= 1
XL_STAGES ?= 1
XL_LIB ?= compat
XL_NOXS_GUEST ?= 1
XEN_READY := $(XEN_DIR)/root/.complete
XEN_CC := $(CC) -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-format-zero-length -Wno-unused-parameter
# The programs' shared headers (result lines, event waits).
XEN_SRC_H := $(wildcard tests/xen/src/*.h)
XEN_STATIC_LIBS := -lxenforeignmemory -lxengnttab -lxenevtchn -lxencall \
	-lxentoolcore -lxentoollog -lpthread -ldl

# Programs of this lane that only need Debian's libraries: static.
XEN_PROGS := $(XEN_PROGDIR)/xsmoke $(XEN_PROGDIR)/xcross
# The xenstored baseline uses Debian's shared libxenstore, as xl does.
XEN_DYN_PROGS := $(XEN_PROGDIR)/xs-handshake
# Programs that link libnoxs (dynamic, like the project's binaries).
XEN_NOXS_PROGS := $(XEN_PROGDIR)/noxs-probe $(XEN_PROGDIR)/noxs-handshake
XEN_NOXS_DEPS := $(BINOUT)/noxsd $(BINOUT)/noxsctl $(BINOUT)/noxs-sysctl-back \
	$(TESTOUT)/integration/noxsd-fdstore $(LIBOUT)/compat-xs/libxenstore.so.4 \
	$(BINOUT)/noxs-sysctl-front $(XEN_NOXS_PROGS) \
	$(filter $(ALL_TARGETS),$(addprefix $(BINOUT)/,noxs-blk-back noxs-blk \
		noxs-console-back noxs-console noxs-console-front))

# Host tools and the boot packages (apt); also needed to build the programs.
$(XEN_READY): tests/xen/fetch.sh tests/xen/common.sh
	@XEN_DIR=$(XEN_DIR) tests/xen/fetch.sh

$(XEN_PROGDIR)/%: tests/xen/src/%.c $(XEN_SRC_H) | $(XEN_READY)
	@mkdir -p $(@D)
	$(XEN_CC) -static -o $@ $< $(XEN_STATIC_LIBS)

$(XEN_DYN_PROGS): $(XEN_PROGDIR)/%: tests/xen/src/%.c $(XEN_SRC_H) | $(XEN_READY)
	@mkdir -p $(@D)
	$(XEN_CC) -o $@ $< -lxenstore

$(XEN_NOXS_PROGS): $(XEN_PROGDIR)/%: tests/xen/src/%.c $(XEN_SRC_H) \
		$(LIBOUT)/libnoxs.so.1 | $(XEN_READY)
	@mkdir -p $(@D)
	$(XEN_CC) -Iinclude -o $@ $< -L$(LIBOUT) -l:libnoxs.so.1 $(XEN_LIBS) -pthread

xen-initrd: $(XEN_READY) $(XEN_PROGS) $(XEN_DYN_PROGS) $(if $(filter 1,$(XEN_NOXS)),$(XEN_NOXS_DEPS))
	@XEN_DIR=$(XEN_DIR) XL_STAGES=$(XL_STAGES) XL_LIB=$(XL_LIB) XL_NOXS_GUEST=$(XL_NOXS_GUEST) \
		tests/xen/mkinitrd.sh $(XEN_PROGDIR) \
		$(if $(filter 1,$(XEN_NOXS)),$(BUILD))

XEN_LANES ?= mixed noxs-only
# Each boot runs (and reports) even if the one before it failed.
check-xen: xen-initrd
	@rc=0; for l in $(XEN_LANES); do \
		if [ $$l = mixed ] || [ -f $(XEN_DIR)/out/expected-$$l ]; then \
			XEN_DIR=$(XEN_DIR) LANE=$$l tests/xen/boot.sh || rc=1; \
		fi; \
	done; exit $$rc

check-xen-noxs-only: xen-initrd
	@XEN_DIR=$(XEN_DIR) LANE=noxs-only tests/xen/boot.sh

.PHONY: check-xen check-xen-noxs-only xen-initrd
