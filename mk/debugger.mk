# debugger.mk: the state debugger's benchmark (tests/bench_debugger.c) calls
# the session (repl/) as well as core/, so it links the command layer's
# objects (not the UI's).  Included by the Makefile; run by make bench
# through scripts/bench_debugger.sh.

$(B)/tests/bench_debugger: tests/bench_debugger.c $(REPL_OBJ) $(B)/libmscore.a $(wildcard repl/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(REPL_OBJ) $(B)/libmscore.a -o $@ $(LDLIBS)
