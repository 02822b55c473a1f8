# sim/: the simulated hypervisor. Drop-in libxenevtchn.so.1,
# libxengnttab.so.1 and libxenforeignmemory.so.1 (Debian's sonames and
# version nodes) on a private core, libnoxs-sim.so.0; the guardian that
# reaps a dead process's resources; the stat tool and library for tests.
# See docs/SIM.md.

MODULE_CFLAGS_sim := -fvisibility=hidden

SIM_CORE_LIB := $(SIMOUT)/libnoxs-sim.so.0
SIM_EVTCHN_LIB := $(SIMOUT)/libxenevtchn.so.1
SIM_GNTTAB_LIB := $(SIMOUT)/libxengnttab.so.1
SIM_FMEM_LIB := $(SIMOUT)/libxenforeignmemory.so.1
SIM_CTRL_LIB := $(SIMOUT)/libxenctrl.so.4.17
SIMCTL_TOOL := $(SIMOUT)/noxs-simctl
SIM_GUARDIAN := $(SIMOUT)/noxs-sim-guardian
SIMSTAT_LIB := $(SIMOUT)/libnoxs-simstat.a
SIMSTAT_TOOL := $(SIMOUT)/noxs-simstat
SIM_LIBS := $(SIM_EVTCHN_LIB) $(SIM_GNTTAB_LIB) $(SIM_FMEM_LIB) \
	$(SIM_CTRL_LIB)

# The static copy of the core (for the guardian and the stat library)
# keeps every symbol hidden, so it never interposes on libnoxs-sim.so.0.
SIM_STATIC_OBJDIR := $(OBJDIR)/sim-static
$(SIM_STATIC_OBJDIR)/%.o: sim/%.c | deps-stamp
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -fvisibility=hidden -DNOXS_SIM_STATIC \
		-MMD -MP -c $< -o $@

# The core, by concern (sim.h lists what each file holds).
SIM_CORE_SRCS := sim/core.c sim/core_domain.c sim/core_event.c \
	sim/core_grant.c sim/core_reap.c sim/core_guard.c
SIM_CORE_OBJS := $(patsubst sim/%.c,$(OBJDIR)/sim/%.o,$(SIM_CORE_SRCS))
SIM_CORE_STATIC_OBJS := $(patsubst sim/%.c,$(SIM_STATIC_OBJDIR)/%.o,$(SIM_CORE_SRCS))

SIM_SO_LDFLAGS = -shared $(BASE_LDFLAGS) -Wl,-rpath,'$$ORIGIN'

# common/parse.o: $NOXS_SIM_DOMID is read with the rule every noxs
# program reads a domain id with (hidden in the library).
SIM_PARSE_OBJ := $(OBJDIR)/common/parse.o

$(SIM_CORE_LIB): $(SIM_CORE_OBJS) $(SIM_PARSE_OBJ) sim/libnoxs-sim.map
	@mkdir -p $(@D)
	$(CC) $(SIM_SO_LDFLAGS) -Wl,-soname,libnoxs-sim.so.0 \
		-Wl,--version-script=sim/libnoxs-sim.map -o $@ $(SIM_CORE_OBJS) \
		$(SIM_PARSE_OBJ)

$(SIMOUT)/libxen%.so.1: $(OBJDIR)/sim/%.o sim/libxen%.map $(SIM_CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(SIM_SO_LDFLAGS) -Wl,-soname,libxen$*.so.1 \
		-Wl,--version-script=sim/libxen$*.map -o $@ $< $(SIM_CORE_LIB)

# xenctrl.h needs GNU C (anonymous unions in Xen's public headers).
$(OBJDIR)/sim/xenctrl.o: BASE_CFLAGS += -std=gnu11

# libxenctrl: Debian's soname and version node, only the calls noxs uses.
$(SIM_CTRL_LIB): $(OBJDIR)/sim/xenctrl.o sim/libxenctrl.map $(SIM_CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(SIM_SO_LDFLAGS) -Wl,-soname,libxenctrl.so.4.17 \
		-Wl,--version-script=sim/libxenctrl.map -o $@ $< $(SIM_CORE_LIB)

# noxs-simctl: the toolstack's view of simulated domains (destroy, list).
$(SIMCTL_TOOL): $(SIM_STATIC_OBJDIR)/simctl.o $(SIM_CORE_STATIC_OBJS) \
		$(SIM_PARSE_OBJ)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(BASE_LDFLAGS)

$(SIM_GUARDIAN): $(SIM_STATIC_OBJDIR)/guardian.o $(SIM_CORE_STATIC_OBJS) \
		$(SIM_PARSE_OBJ)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(BASE_LDFLAGS)

$(SIMSTAT_LIB): $(SIM_STATIC_OBJDIR)/simstat.o $(SIM_CORE_STATIC_OBJS) \
		$(SIM_PARSE_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(SIMSTAT_TOOL): $(SIM_STATIC_OBJDIR)/simstat-cli.o $(SIMSTAT_LIB)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(BASE_LDFLAGS)

ALL_TARGETS += $(SIM_CORE_LIB) $(SIM_LIBS) $(SIM_GUARDIAN) $(SIMSTAT_LIB) \
	$(SIMSTAT_TOOL) $(SIMCTL_TOOL)

.PHONY: sim
sim: $(SIM_CORE_LIB) $(SIM_LIBS) $(SIM_GUARDIAN) $(SIMSTAT_LIB) $(SIMSTAT_TOOL) \
	$(SIMCTL_TOOL)

# Everything a program needs to run on the simulator (the Makefile's `run`).
SIM_TARGETS += $(SIM_CORE_LIB) $(SIM_LIBS) $(SIM_GUARDIAN) $(SIMSTAT_TOOL) \
	$(SIMCTL_TOOL)
