# common/: what every noxs program shares (logging, the number parser,
# detaching after set-up, the version). A static archive linked into
# each program; parse.o also goes into libnoxs.so (hidden there), whose
# exported noxs_self_domid() reads its environment with the same rule.

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
