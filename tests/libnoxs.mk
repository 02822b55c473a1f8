# Tests of libnoxs: Check unit suites and the page fuzzer.
# (tests/module.mk includes every tests/*.mk.)

LIBNOXS_CHECKS := check_page check_dev check_drvproto
# Suites with threads (run again under SAN=thread by check-tsan).
LIBNOXS_TSAN_CHECKS := check_page check_dev check_drvproto

define libnoxs_check_rules
$$(OBJDIR)/tests/unit/$(1).o: BASE_CFLAGS += $$(CHECK_CFLAGS)
$$(TESTOUT)/$(1): $$(OBJDIR)/tests/unit/$(1).o $$(LIBOUT)/libnoxs.so
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_LDFLAGS) -o $$@ $$< -L$$(LIBOUT) -lnoxs $$(XEN_LIBS) \
		$$(CHECK_LIBS)
endef
$(foreach t,check_page,$(eval $(call libnoxs_check_rules,$(t))))

# check_dev and check_drvproto drive the library's internal (hidden)
# backend constructor and walk, so they link libnoxs's objects instead
# of the shared library.
define libnoxs_internal_check_rules
$$(OBJDIR)/tests/unit/$(1).o: BASE_CFLAGS += $$(CHECK_CFLAGS)
$$(TESTOUT)/$(1): $$(OBJDIR)/tests/unit/$(1).o $$(LIBNOXS_OBJS)
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_LDFLAGS) -o $$@ $$^ $$(XEN_LIBS) $$(CHECK_LIBS)
endef
$(foreach t,check_dev check_drvproto,\
	$(eval $(call libnoxs_internal_check_rules,$(t))))

UNIT_TESTS += $(addprefix $(TESTOUT)/,$(LIBNOXS_CHECKS))
TSAN_TESTS += $(addprefix $(TESTOUT)/,$(LIBNOXS_TSAN_CHECKS))

# libFuzzer target: the page code compiled straight in, with clang.
FUZZ_CC ?= clang
FUZZ_PAGE_SRCS := tests/fuzz/fuzz_page.c libnoxs/page.c libnoxs/boot.c \
	libnoxs/log.c libnoxs/names.c common/parse.c
$(BUILD)/fuzz/fuzz_page: $(FUZZ_PAGE_SRCS) libnoxs/private.h \
		include/noxs/abi.h include/noxs/page.h include/noxs/noxs.h \
		common/parse.h VERSION
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Iinclude -I. \
		-DNOXS_VERSION='"$(NOXS_VERSION)"' -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $(FUZZ_PAGE_SRCS)
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz_page
