# noxs: one non-recursive Makefile; every folder adds its targets through
# its own module.mk (see docs/DESIGN.md, "Build").
#
#   make            build everything into build/
#   make check      build and run every test suite (installs deps as root)
#                   and check-install (what "make install" installs)
#   make demo       run the main job on the simulator
#   make SAN=address,undefined check   the same under sanitizers (build/san-*)
#   make SAN=thread check-tsan         the concurrent parts under TSan
#   make install PREFIX=/usr/local DESTDIR=...

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
SIM_TARGETS :=
LIB_TARGETS :=

$(OBJDIR)/%.o: %.c | deps-stamp
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(MODULE_CFLAGS_$(firstword $(subst /, ,$<))) \
		-MMD -MP -c $< -o $@

MODULES := common sim libnoxs noxsd tools backends frontends compat-xs tests bench docs
-include $(foreach m,$(MODULES),$(wildcard $(m)/module.mk))

all: $(ALL_TARGETS)

# Dependencies: Debian packages, installed when run as root (see README).
deps-stamp:
	@scripts/deps.sh build

deps:
	@scripts/deps.sh build

# Environment for programs run from the build tree on the simulator.
RUN_ENV = LD_LIBRARY_PATH=$(abspath $(SIMOUT)):$(abspath $(LIBOUT)) \
	NOXS_BUILD=$(abspath $(BUILD))

check: all $(UNIT_TESTS) $(INTEGRATION_TESTS)
	$(install_check_trees)
	@$(RUN_ENV) $(INSTALL_CHECK_ENV) scripts/run-tests.sh $(UNIT_TESTS) \
		$(INTEGRATION_TESTS) tests/install-check.sh

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
install_layout = PREFIX=$(1) BINDIR=$(1)/bin SBINDIR=$(1)/sbin \
	LIBDIR=$(1)/lib INCLUDEDIR=$(1)/include MANDIR=$(1)/share/man \
	PKGCONFIGDIR=$(1)/lib/pkgconfig SYSTEMDDIR=$(1)/lib/systemd/system
define install_check_trees
@rm -rf $(INSTALL_CHECK)
+@$(MAKE) --no-print-directory -s install BUILD=$(BUILD) SAN=$(SAN) \
	$(call install_layout,/usr) DESTDIR=$(INSTALL_CHECK)/stage
+@$(MAKE) --no-print-directory -s install BUILD=$(BUILD) SAN=$(SAN) \
	$(call install_layout,$(INSTALL_CHECK)/root) DESTDIR=
endef
INSTALL_CHECK_ENV = NOXS_INSTALL_CHECK=$(INSTALL_CHECK) CC="$(CC)" \
	PKG_CONFIG="$(PKG_CONFIG)" NOXS_SAN_FLAGS="$(SAN_FLAGS)" \
	NOXS_VERSION=$(LIBNOXS_VERSION)

check-install: all
	$(install_check_trees)
	@$(RUN_ENV) $(INSTALL_CHECK_ENV) scripts/run-tests.sh tests/install-check.sh

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

install: all $(INSTALL_TARGETS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

.PHONY: all run check check-install check-unit check-tsan tsan-run demo bench \
	bench-full fuzz install format format-check clean deps deps-stamp

-include $(shell find $(OBJDIR) -name '*.d' 2>/dev/null)
