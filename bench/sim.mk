# sim-floor: the simulator's notify / grant-map floor (docs/SIM.md).
SIM_FLOOR := $(BENCHOUT)/sim-floor

$(SIM_FLOOR): $(OBJDIR)/bench/sim-floor.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(BASE_LDFLAGS) $(XEN_LIBS)

BENCH_PROGS += $(SIM_FLOOR)
ALL_TARGETS += $(SIM_FLOOR)
