# view.mk: the full-screen view's test and benchmark programs (viz/, headless).
# Included by the Makefile; `make` builds them, tests/run.sh and
# scripts/bench_view.sh run them.
#
#   build/tests/test_viz_panels   golden screen dumps of every panel (tests/golden/viz/view-*.txt)
#   build/tests/bench_view        one full redraw of a 0.1B-shape model's overview and zoom

# the panels render without ncurses: every viz object but termdraw.o
$(B)/tests/test_viz_panels: tests/test_viz_panels.c $(VIZ_TEST_OBJ) $(B)/libmscore.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(VIZ_TEST_OBJ) $(B)/libmscore.a -o $@ -lpng -lz $(LDLIBS)

# the benchmark also writes the frame through ncurses (to /dev/null)
$(B)/tests/bench_view: tests/bench_view.c $(VIZ_OBJ) $(B)/libmscore.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(VIZ_OBJ) $(B)/libmscore.a -o $@ -lncursesw -lpng -lz $(LDLIBS)
