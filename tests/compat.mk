# compat-xs tests: the xenstored harness (LD_PRELOAD shim), the legacy
# driver pair, conformance of Debian's xenstore tools, watches,
# transactions, error cases; plus the path-parser fuzz target.
# See docs/COMPAT.md.

COMPAT_TESTOUT := $(TESTOUT)/compat

# The shim is built against Xen's own headers, which need GNU C.
$(COMPAT_TESTOUT)/xsshim.so: tests/compat/xsshim.c tests/compat/xsshim-libc.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -D_GNU_SOURCE -fPIC -shared $(WARNINGS) $(CFLAGS) \
		-fvisibility=hidden -o $@ $< -ldl

# The legacy driver pair: xs_* only, linked with -lxenstore (Debian's at
# build time; compat-xs's at run time when its directory is first in
# LD_LIBRARY_PATH).
LEGACY_BINS := $(BINOUT)/legacy-back $(BINOUT)/legacy-front \
	$(BINOUT)/legacy-toolstack
LEGACY_COMMON := $(OBJDIR)/tests/legacy/legacy.o

$(BINOUT)/legacy-back: $(OBJDIR)/tests/legacy/xsback.o $(LEGACY_COMMON)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore
$(BINOUT)/legacy-toolstack: $(OBJDIR)/tests/legacy/xstoolstack.o $(LEGACY_COMMON)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore
$(BINOUT)/legacy-front: $(OBJDIR)/tests/legacy/xsfront.o $(LEGACY_COMMON)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore

ALL_TARGETS += $(LEGACY_BINS)

# Test programs of the xs_* API alone, one source file each, linked as
# the legacy pair is: xssem (semantics), xsmixed (a toolstack step on
# both stores of a mixed host, test-mixed.sh), xsguest (the legacy guest
# shutdown agent, control/shutdown), xsfileno (a poller of xs_fileno),
# xsintro (xs_introduce_domain with a ring, for noxs-xsringd).
XS_TEST_PROGS := $(addprefix $(COMPAT_TESTOUT)/,xssem xsmixed xsguest \
	xsfileno xsintro)
$(XS_TEST_PROGS): $(COMPAT_TESTOUT)/%: $(OBJDIR)/tests/compat/%.o
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenstore

# Test scripts are copied next to what they use, so they find the build
# through $NOXS_BUILD alone.
COMPAT_HELPERS := $(COMPAT_TESTOUT)/xsshim.so $(COMPAT_TESTOUT)/xsd.sh \
	$(COMPAT_TESTOUT)/lib.sh $(COMPAT_TESTOUT)/lib-compat.sh $(COMPAT_TESTOUT)/xssem $(LEGACY_BINS) \
	$(COMPAT_TESTOUT)/xsmixed $(COMPAT_TESTOUT)/xsfileno \
	$(COMPAT_XS) $(BINOUT)/noxsd $(COMPAT_TESTOUT)/xsguest \
	$(BINOUT)/noxs-sysctl-back $(BINOUT)/noxsctl $(COMPAT_TESTOUT)/xsdclient \
	$(COMPAT_TESTOUT)/xsdboot $(COMPAT_TESTOUT)/xsringd-lib.sh
COMPAT_SCRIPTS := $(addprefix $(COMPAT_TESTOUT)/,test-bench-generic.sh \
	test-bench-ring.sh test-bench-bringup3.sh test-bench-compat.sh \
	test-conformance.sh \
	test-control.sh \
	test-legacy-noxs.sh test-legacy-xenstored.sh test-local.sh \
	test-lstore-conformance.sh test-many.sh test-mixed.sh test-semantics.sh \
	test-symbols.sh test-tx.sh test-xsd-boot.sh test-xsd-client.sh \
	test-xsd-harness.sh test-xsringd.sh test-xsringd-sock.sh \
	test-xsringd-fair.sh test-xsringd-split.sh test-xsringd-many.sh)

$(COMPAT_TESTOUT)/xsd.sh $(COMPAT_TESTOUT)/lib-compat.sh $(COMPAT_TESTOUT)/xsringd-lib.sh: \
		$(COMPAT_TESTOUT)/%: tests/compat/%
	@mkdir -p $(@D)
	cp $< $@
# The shell test library, beside its compat add-on.
$(COMPAT_TESTOUT)/lib.sh: tests/lib.sh
	@mkdir -p $(@D)
	cp $< $@
$(COMPAT_SCRIPTS): $(COMPAT_TESTOUT)/%: tests/compat/% $(COMPAT_HELPERS) | compat-deps
	@mkdir -p $(@D)
	cp $< $@

# The tests compare against Debian's real daemons and tools.
compat-deps:
	@scripts/deps.sh compat

.PHONY: compat-deps

INTEGRATION_TESTS += $(COMPAT_SCRIPTS)

# libFuzzer target for the compat-xs path parser.
$(eval $(call fuzz_target,fuzz_xspath,compat-xs/path.c,\
	compat-xs/private.h include/noxs/abi.h))

# Check suite of compat-xs internals (tables, a batch's staging, big
# transactions without noxsd): linked with the library's objects, since
# the internals are hidden in libxenstore.so.4.
$(eval $(call unit_test,check_cxs,$(COMPAT_XS_OBJS) $(LIBOUT)/libnoxs.so,\
	-L$(LIBOUT) -lnoxs $(LMDB_LIBS)))

# compat-xs's xenstored client against the real daemons; linked with the
# client's own objects (hidden in the library).
XSDCLIENT_OBJS := $(OBJDIR)/compat-xs/xsd.o $(OBJDIR)/compat-xs/wire.o \
	$(OBJDIR)/common/unixsock.o
$(OBJDIR)/tests/compat/xsdclient.o: BASE_CFLAGS += -Icompat-xs
$(COMPAT_TESTOUT)/xsdclient: $(OBJDIR)/tests/compat/xsdclient.o $(XSDCLIENT_OBJS)
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^

# A guest's bootstrap sources as libnoxs sees them.
$(COMPAT_TESTOUT)/xsdboot: $(OBJDIR)/tests/compat/xsdboot.o $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $< -L$(LIBOUT) -lnoxs

# libFuzzer target for the client's frame reader and its filing of what
# a daemon sends (fed through a socket pair).
$(eval $(call fuzz_target,fuzz_xsdframe,compat-xs/xsd.c compat-xs/wire.c \
	common/unixsock.c,compat-xs/xsdframe.h compat-xs/gstore.h \
	compat-xs/wire.h common/unixsock.h,-I. -Icompat-xs))

# The client's threads (a request in flight while another thread takes
# events) under TSan.
TSAN_TESTS += $(COMPAT_TESTOUT)/test-xsd-client.sh
# xs_fileno's thread draining events beside the caller's xs_* calls.
TSAN_TESTS += $(COMPAT_TESTOUT)/test-local.sh

# noxs-xsringd (docs/XSRINGD.md): a guest that speaks to XenStore over its
# store ring as Linux's xenbus does, and the toolstack's introduction of
# it (xs_introduce_domain with the ring, through compat-xs).
$(OBJDIR)/tests/compat/xsring.o: BASE_CFLAGS += -Icompat-xs
$(COMPAT_TESTOUT)/xsring: $(OBJDIR)/tests/compat/xsring.o $(OBJDIR)/compat-xs/wire.o
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^ -lxenevtchn
$(COMPAT_TESTOUT)/test-xsringd.sh $(COMPAT_TESTOUT)/test-xsringd-sock.sh \
	$(COMPAT_TESTOUT)/test-xsringd-fair.sh \
	$(COMPAT_TESTOUT)/test-xsringd-split.sh \
	$(COMPAT_TESTOUT)/test-bench-ring.sh: $(COMPAT_TESTOUT)/xsring \
	$(COMPAT_TESTOUT)/xsintro $(XSRINGD)
# Hundreds of ring guests in one process (bench/xsrclient.c's client,
# each guest with its simulated domain's identity) against the service.
$(COMPAT_TESTOUT)/xsrmany: $(OBJDIR)/tests/compat/xsrmany.o \
		$(OBJDIR)/bench/xsrclient.o $(OBJDIR)/tests/legacy/legacy.o \
		$(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) -lxenstore \
		-L$(LIBOUT) -lnoxs -lxenevtchn
$(COMPAT_TESTOUT)/test-xsringd-many.sh: $(COMPAT_TESTOUT)/xsrmany \
	$(COMPAT_TESTOUT)/xsintro $(XSRINGD)
# A raw client of the service's Unix socket: malformed frames.
$(COMPAT_TESTOUT)/xsockraw: $(OBJDIR)/tests/compat/xsockraw.o
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $^
$(COMPAT_TESTOUT)/test-xsringd-sock.sh: $(COMPAT_TESTOUT)/xsockraw

# libFuzzer target: the ring parser against a ring a guest fills at will.
$(eval $(call fuzz_target,fuzz_xsring,compat-xs/xsringd_ring.c,\
	compat-xs/xsringd_ring.h compat-xs/wire.h,-Icompat-xs))

# The three-device bring-up of Debian's daemons (bench/xs-bringup3.sh,
# copied beside xsd.sh) at N=10.
$(COMPAT_TESTOUT)/xs-bringup3.sh: bench/xs-bringup3.sh
	@mkdir -p $(@D)
	cp $< $@
$(COMPAT_TESTOUT)/test-bench-bringup3.sh: $(COMPAT_TESTOUT)/xs-bringup3.sh \
	$(BENCHOUT)/xs-bringup3 $(BENCHOUT)/xsdsim.so
