# The reference drivers, one folder per device with both halves, their
# man pages and units. Logging, options and detaching come from common/
# ($(COMMON_LIB)); the ring protocols are the installed headers
# <noxs/io/*.h>, so that a half never reaches into another folder.

DRV_LINK = $(CC) $(BASE_LDFLAGS) -o $@ $(filter %.o,$^) $(COMMON_LIB) \
	-L$(LIBOUT) -lnoxs $(XEN_LIBS)

DRIVER_BINS :=
-include drivers/sysctl/module.mk drivers/console/module.mk \
	drivers/blk/module.mk

ALL_TARGETS += $(DRIVER_BINS)
drivers: $(DRIVER_BINS)
.PHONY: drivers
