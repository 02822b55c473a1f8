# The example driver (docs/DESIGN.md, "How to write a driver"): both
# halves of a ping device written against libnoxs's driver protocol.
# Built with everything into build/examples (not bin/: installed nowhere);
# tests/integration/lifecycle-example.sh runs it through the lifecycle the
# real drivers pass.

EXAMPLEOUT := $(BUILD)/examples
EXAMPLE_BINS := $(EXAMPLEOUT)/noxs-ping-back $(EXAMPLEOUT)/noxs-ping-front

$(EXAMPLEOUT)/noxs-ping-%: $(OBJDIR)/examples/ping-%.o $(LIBOUT)/libnoxs.so
	@mkdir -p $(@D)
	$(CC) $(BASE_LDFLAGS) -o $@ $< -L$(LIBOUT) -lnoxs $(XEN_LIBS)

ALL_TARGETS += $(EXAMPLE_BINS)
