# common/: what every noxs program shares (logging, the number and
# option parser, detaching after set-up, a backend daemon's start, the
# Unix-socket connect, the version). A static archive linked into each
# program (a program pulls only the objects it calls: backend.o, which
# calls libnoxs, only into the backends); parse.o and unixsock.o also go
# into libnoxs.so (hidden there, noxs_self_domid() reads its environment
# with parse.c's rule) and unixsock.o into compat-xs's libxenstore.so.4.

COMMON_SRCS := $(sort $(wildcard common/*.c))
COMMON_OBJS := $(patsubst %.c,$(OBJDIR)/%.o,$(COMMON_SRCS))
COMMON_LIB := $(LIBOUT)/libnoxs-common.a

# The one version of every program, libnoxs's pkg-config file included.
NOXS_VERSION := $(shell cat VERSION)
MODULE_CFLAGS_common := -fvisibility=hidden -DNOXS_VERSION='"$(NOXS_VERSION)"'
$(OBJDIR)/common/parse.o: VERSION

$(COMMON_LIB): $(COMMON_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

ALL_TARGETS += $(COMMON_LIB)
