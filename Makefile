# noxs: one non-recursive Makefile; every folder adds its targets through
# its own module.mk (see docs/DESIGN.md, "Build").
#
#   make            build everything into build/
#   make check      build and run every test suite (installs deps as root)
#                   and check-install (what "make install" installs)
#   make size-check no file over 1,000 lines, no function over 120
#   make demo       run the main job on the simulator
#   make SAN=address,undefined check   the same under sanitizers (build/san-*)
#   make SAN=thread check-tsan         the concurrent parts under TSan
#   make install PREFIX=/usr/local DESTDIR=...
#   make uninstall PREFIX=... DESTDIR=...   removes what install put there
#   make deb        Debian packages into build/deb/ (debian/, docs/NOXSD.md)
#   make check-deb  build them, lintian, install/upgrade/purge in a chroot
#   make DEPS=no    skip the Debian package gate (scripts/deps.sh)

.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:

comma := ,
SAN ?=
ifeq ($(SAN),)
BUILD ?= build
else
BUILD ?= build/san-$(subst $(comma),-,$(SAN))
endif

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
# systemd-modules-load reads /usr/lib/modules-load.d (packages) and
# /usr/local/lib/modules-load.d (local installs), besides /etc and /run.
MODULESLOADDIR ?= $(PREFIX)/lib/modules-load.d
# logrotate reads /etc/logrotate.d whatever the prefix: not under PREFIX.
SYSCONFDIR ?= /etc
LOGROTATEDIR ?= $(SYSCONFDIR)/logrotate.d
# Run after installing into the real root as root (DESTDIR empty), so
# that the loader finds the new libnoxs.so.1 (docs/NOXSD.md, "Installing").
LDCONFIG ?= /sbin/ldconfig
DESTDIR ?=

CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
PKG_CONFIG ?= pkg-config

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-unused-parameter
ifeq ($(CI),true)
WARNINGS += -Werror
endif
ifneq ($(WERROR),)
WARNINGS += -Werror
endif

OPT ?= -O2
CFLAGS ?= $(OPT) -g
SAN_FLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all)
# gcc refuses atomic_thread_fence under TSan (it cannot model fences); the
# ring code needs its fences, and the TSan suites do not exercise the rings.
ifneq ($(findstring thread,$(SAN)),)
SAN_FLAGS += -Wno-tsan
endif
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -pthread -Iinclude -I. \
	$(WARNINGS) $(SAN_FLAGS) $(CFLAGS)
BASE_LDFLAGS := -pthread $(SAN_FLAGS) $(LDFLAGS)

# The real Xen libraries (Debian's libxen-dev). Project code links with
# these; on a host without Xen, LD_LIBRARY_PATH=$(BUILD)/sim swaps in the
# simulator, which has the same sonames and symbol versions.
XEN_LIBS := -lxenevtchn -lxengnttab -lxenforeignmemory
URCU_LIBS := -lurcu-memb -lurcu-cds -lurcu-common
# liburing (Debian's liburing-dev): noxs-blk-back batches its I/O with it.
URING_LIBS := -luring
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck)

OBJDIR := $(BUILD)/obj
LIBOUT := $(BUILD)/lib
BINOUT := $(BUILD)/bin
SIMOUT := $(BUILD)/sim
TESTOUT := $(BUILD)/tests
BENCHOUT := $(BUILD)/bench

# Filled in by the module.mk files.
ALL_TARGETS :=
SIM_TARGETS :=
LIB_TARGETS :=
UNIT_TESTS :=
INTEGRATION_TESTS :=
TSAN_TESTS :=
FUZZ_TARGETS :=
BENCH_PROGS :=
INSTALL_TARGETS :=
# Every file "make install" installs, without DESTDIR ("make uninstall"
# removes them), and the directories of noxs's own it creates.
INSTALL_FILES :=
INSTALL_OWN_DIRS :=

$(OBJDIR)/%.o: %.c | deps-stamp
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(MODULE_CFLAGS_$(firstword $(subst /, ,$<))) \
		-MMD -MP -c $< -o $@

# One way to register a test, used by every tests/*.mk:
#   UNIT_TESTS += a Check suite ($(call unit_test,...) does it),
#   INTEGRATION_TESTS += a script or program run by scripts/run-tests.sh,
#   TSAN_TESTS += one of those run again under SAN=thread (check-tsan),
#   FUZZ_TARGETS += a libFuzzer program ($(call fuzz_target,...) does it).
# Each list is written out name by name, so that a file left in tests/
# is never run by accident, and a test is never dropped by a rename.

# $(call unit_test,NAME,PREREQUISITES,LIBS[,CFLAGS]): the Check suite
# tests/unit/NAME.c, linked with the objects and archives among
# PREREQUISITES (anything else there, such as a library or a program the
# suite runs, is only built first), then LIBS.
define unit_test
$$(OBJDIR)/tests/unit/$(1).o: BASE_CFLAGS += $$(CHECK_CFLAGS) $(4)
$$(TESTOUT)/$(1): $$(OBJDIR)/tests/unit/$(1).o $(2)
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_LDFLAGS) -o $$@ $$(filter %.o %.a,$$^) $(3) $$(CHECK_LIBS)
UNIT_TESTS += $$(TESTOUT)/$(1)
endef

# $(call fuzz_target,NAME,SOURCES,HEADERS[,CFLAGS[,LIBS]]): the libFuzzer
# program tests/fuzz/NAME.c, built by clang with the SOURCES it tests
# compiled straight in (instrumented as a whole), into $(BUILD)/fuzz/.
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -g -O1 -pthread \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
define fuzz_target
$$(BUILD)/fuzz/$(1): tests/fuzz/$(1).c $(2) $(3)
	@mkdir -p $$(@D)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) $(4) -o $$@ tests/fuzz/$(1).c $(2) $(5)
FUZZ_TARGETS += $$(BUILD)/fuzz/$(1)
endef

MODULES := common sim libnoxs noxsd tools drivers examples compat-xs \
	tests bench docs dist
-include $(foreach m,$(MODULES),$(wildcard $(m)/module.mk))

all: $(ALL_TARGETS)

# Dependencies: Debian packages, installed when run as root (see README).
# Each target asks only for what it uses: Check only for the unit tests,
# clang only for the fuzz targets. DEPS=no skips the gate.
DEPS ?=
DEPS_SH = $(if $(filter no,$(DEPS)),@: ,@scripts/deps.sh)
deps-stamp:
	$(DEPS_SH) build

deps:
	$(DEPS_SH) build

test-deps:
	$(DEPS_SH) test

fuzz-deps:
	$(DEPS_SH) fuzz

format-deps:
	$(DEPS_SH) format

deb-deps:
	$(DEPS_SH) deb

UNIT_TEST_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(wildcard tests/unit/*.c))
$(UNIT_TEST_OBJS) $(UNIT_TESTS): | test-deps
$(FUZZ_TARGETS): | fuzz-deps

# Environment for programs run from the build tree on the simulator.
RUN_ENV = LD_LIBRARY_PATH=$(abspath $(SIMOUT)):$(abspath $(LIBOUT)) \
	NOXS_BUILD=$(abspath $(BUILD))

check: all $(UNIT_TESTS) $(INTEGRATION_TESTS)
	$(install_check_trees)
	@$(RUN_ENV) $(INSTALL_CHECK_ENV) scripts/run-tests.sh $(UNIT_TESTS) \
		$(INTEGRATION_TESTS) tests/install-check.sh tests/build-deps.sh \
		tests/size-check.sh
	+@$(check_deb_if_possible)

# The Debian packages (debian/): built from a copy of this tree by
# dpkg-buildpackage, into build/deb (the developer's build/ is left alone).
DEB_OUT = $(abspath build)/deb
deb: deb-deps
	@scripts/mkdeb.sh $(DEB_OUT)

# check-deb: both packages' builds, lintian, install/upgrade/remove/purge
# in a Debian 12 chroot (tests/deb-check.sh; root). Slow (minutes): make
# check runs it only where it can (root, the tools installed, not under
# SAN), .ci/run installs the tools first.
DEB_CHECK = $(abspath build)/deb-check
check-deb: deb-deps $(SIM_TARGETS)
	@NOXS_DEB_CHECK=$(DEB_CHECK) NOXS_TEST_TIMEOUT=2400 \
		NOXS_SIM_LIBS=$(abspath $(SIMOUT)) \
		scripts/run-tests.sh tests/deb-check.sh
define check_deb_if_possible
if [ -n "$(SAN)" ]; then :; \
elif [ "$$(id -u)" -eq 0 ] && command -v dpkg-buildpackage >/dev/null && \
	command -v lintian >/dev/null && command -v debootstrap >/dev/null && \
	command -v dh >/dev/null; then \
	$(MAKE) --no-print-directory check-deb; \
else \
	echo "note: check-deb not run (needs root and scripts/deps.sh deb)"; \
fi
endef

# check-install: "make install" as a packager runs it (PREFIX=/usr,
# DESTDIR=$(INSTALL_CHECK)/stage), and again with the prefix itself in
# the build tree ($(INSTALL_CHECK)/root, no DESTDIR), where the units'
# ExecStart= programs exist for systemd-analyze verify; then
# tests/install-check.sh looks at both. The sub-makes get this BUILD and
# SAN, so they install this build and rebuild nothing. The whole layout
# is given, so that a BINDIR=... on make's command line cannot move it.
# "+": these lines run sub-makes (jobserver, make -n), which make cannot
# see inside a variable.
INSTALL_CHECK = $(abspath $(BUILD))/install-check
# $(2) is SYSCONFDIR. LDCONFIG is a stand-in that records its calls:
# install must run it for the real root (DESTDIR empty) as root only, and
# the check must not rebuild this machine's loader cache.
# A third tree, uninst, is installed and uninstalled: nothing may remain.
install_layout = PREFIX=$(1) BINDIR=$(1)/bin SBINDIR=$(1)/sbin \
	LIBDIR=$(1)/lib INCLUDEDIR=$(1)/include MANDIR=$(1)/share/man \
	PKGCONFIGDIR=$(1)/lib/pkgconfig SYSTEMDDIR=$(1)/lib/systemd/system \
	MODULESLOADDIR=$(1)/lib/modules-load.d SYSCONFDIR=$(2) \
	LOGROTATEDIR=$(2)/logrotate.d \
	LDCONFIG="$(abspath tests/install-ldconfig.sh) $(INSTALL_CHECK)/ldconfig.log"
define install_check_trees
@rm -rf $(INSTALL_CHECK)
@mkdir -p $(INSTALL_CHECK)
+@$(MAKE) --no-print-directory -s install BUILD=$(BUILD) SAN=$(SAN) \
	$(call install_layout,/usr,/etc) DESTDIR=$(INSTALL_CHECK)/stage \
	>$(INSTALL_CHECK)/stage.out 2>&1 || { cat $(INSTALL_CHECK)/stage.out; exit 1; }
+@$(MAKE) --no-print-directory -s install BUILD=$(BUILD) SAN=$(SAN) \
	$(call install_layout,$(INSTALL_CHECK)/root,$(INSTALL_CHECK)/root/etc) \
	DESTDIR= >$(INSTALL_CHECK)/root.out 2>&1 || { cat $(INSTALL_CHECK)/root.out; exit 1; }
+@$(MAKE) --no-print-directory -s install BUILD=$(BUILD) SAN=$(SAN) \
	$(call install_layout,/usr,/etc) DESTDIR=$(INSTALL_CHECK)/uninst \
	>/dev/null 2>&1
@find $(INSTALL_CHECK)/uninst ! -type d | wc -l >$(INSTALL_CHECK)/uninst.before
+@$(MAKE) --no-print-directory -s uninstall BUILD=$(BUILD) SAN=$(SAN) \
	$(call install_layout,/usr,/etc) DESTDIR=$(INSTALL_CHECK)/uninst \
	>$(INSTALL_CHECK)/uninst.out 2>&1 || { cat $(INSTALL_CHECK)/uninst.out; exit 1; }
endef
INSTALL_CHECK_ENV = NOXS_INSTALL_CHECK=$(INSTALL_CHECK) CC="$(CC)" CXX="$(CXX)" \
	PKG_CONFIG="$(PKG_CONFIG)" NOXS_SAN_FLAGS="$(SAN_FLAGS)" \
	NOXS_VERSION=$(LIBNOXS_VERSION)

check-install: all
	$(install_check_trees)
	@$(RUN_ENV) $(INSTALL_CHECK_ENV) scripts/run-tests.sh tests/install-check.sh

# size-check: no .c/.h file of the product over 1,000 lines, no function
# over 120 (scripts/size-check.sh names each offender). make check runs
# tests/size-check.sh, which tests the script and then runs it on the tree.
size-check:
	@scripts/size-check.sh

# Build and run just the named test programs: make run T="build/tests/x ..."
run: $(SIM_TARGETS) $(LIB_TARGETS) $(T)
	@$(RUN_ENV) scripts/run-tests.sh $(T)

check-unit: all $(UNIT_TESTS)
	@$(RUN_ENV) scripts/run-tests.sh $(UNIT_TESTS)

check-tsan:
	$(MAKE) SAN=thread tsan-run

tsan-run: all $(TSAN_TESTS)
	@$(RUN_ENV) TSAN_OPTIONS=halt_on_error=1 scripts/run-tests.sh $(TSAN_TESTS)

demo: all
	@$(RUN_ENV) scripts/demo.sh

bench: all $(BENCH_PROGS)
	@$(RUN_ENV) scripts/bench.sh short

bench-full: all $(BENCH_PROGS)
	@$(RUN_ENV) scripts/bench.sh full

fuzz: $(FUZZ_TARGETS)
	@scripts/run-fuzz.sh $(or $(FUZZ_SECONDS),10) $(FUZZ_TARGETS)

# The loader must find the new libnoxs.so.1 by itself: ldconfig when
# installing into the real root as root. No run path is built in: Debian
# forbids one to a system directory, a package is built from this same
# install, and a run path would bind the programs to one LIBDIR. An
# install the loader cannot use (a LIBDIR outside /etc/ld.so.conf, or not
# root) says so and how to fix it. --help: every program takes it and
# needs nothing running.
define install_loader_check
@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
	echo "$(LDCONFIG)"; $(LDCONFIG) || exit 1; \
fi
@if [ -z "$(DESTDIR)" ] && \
	! env -u LD_LIBRARY_PATH $(BINDIR)/noxsctl --help >/dev/null 2>&1; then \
	echo "noxs: warning: programs in $(BINDIR) and $(SBINDIR) do not find $(LIBDIR)/libnoxs.so.1:" >&2; \
	echo "noxs: add $(LIBDIR) to /etc/ld.so.conf.d/noxs.conf and run ldconfig as root," >&2; \
	echo "noxs: or run them with LD_LIBRARY_PATH=$(LIBDIR)" >&2; \
fi
endef

install: all $(INSTALL_TARGETS)
	$(install_loader_check)

# Removes every file install installs (INSTALL_FILES, kept by each
# module.mk next to its install rule), then the directories that are
# noxs's own if they are empty; shared ones (bin, lib, man8, ...) stay.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALL_FILES))
	@for d in $(addprefix $(DESTDIR),$(INSTALL_OWN_DIRS)); do \
		if [ -d "$$d" ] && ! rmdir "$$d" 2>/dev/null; then \
			echo "noxs: $$d holds files noxs did not install: left in place" >&2; \
		fi; \
	done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
		echo "$(LDCONFIG)"; $(LDCONFIG) || exit 1; \
	fi

# clang-format (Debian's clang-format, version 14) on the C files git
# tracks, with .clang-format (sim/.clang-format for the simulator):
# format rewrites them, format-check lists each difference and fails if
# there is one.
CLANG_FORMAT ?= clang-format
FORMAT_FILES = $$(git ls-files '*.c' '*.h')
format: format-deps
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check: format-deps
	@$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build

.PHONY: all run check check-install check-unit size-check check-tsan tsan-run demo bench \
	bench-full fuzz install uninstall format format-check clean deps \
	deps-stamp test-deps fuzz-deps format-deps deb-deps deb check-deb

-include $(shell find $(OBJDIR) -name '*.d' 2>/dev/null)
