# Tests of libnoxs: Check unit suites and the page fuzzer.
# (tests/module.mk includes every tests/*.mk.)

$(eval $(call unit_test,check_page,$(LIBOUT)/libnoxs.so,\
	-L$(LIBOUT) -lnoxs $(XEN_LIBS)))
# check_dev and check_drvproto drive the library's internal (hidden)
# backend constructor and walk, so they link libnoxs's objects instead
# of the shared library.
$(eval $(call unit_test,check_dev,$(LIBNOXS_OBJS),$(XEN_LIBS)))
$(eval $(call unit_test,check_drvproto,$(LIBNOXS_OBJS),$(XEN_LIBS)))
# Suites with threads (run again under SAN=thread by check-tsan).
TSAN_TESTS += $(TESTOUT)/check_page $(TESTOUT)/check_dev \
	$(TESTOUT)/check_drvproto

# libFuzzer target: the page code.
$(eval $(call fuzz_target,fuzz_page,libnoxs/page.c libnoxs/boot.c \
	libnoxs/log.c libnoxs/names.c common/parse.c common/unixsock.c,\
	libnoxs/private.h include/noxs/abi.h include/noxs/page.h \
	include/noxs/noxs.h common/parse.h common/unixsock.h VERSION,-I. -DNOXS_VERSION='"$(NOXS_VERSION)"'))
