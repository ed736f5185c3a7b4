# metastate: build, test and benchmark.  `make help` lists the targets.
CC      ?= gcc
PYTHON  ?= /usr/bin/python3
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -fopenmp -Icore -Irepl -Iviz
# OpenBLAS is opened at run time (core/kernels.c: blas_open), not linked
LDLIBS  += -lcjson -lm -lpthread -ldl
UI_LIBS := -lreadline -lncursesw -lpng -lz
B       := build

CORE_SRC := $(wildcard core/*.c)
REPL_SRC := $(wildcard repl/*.c)
VIZ_SRC  := $(wildcard viz/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
# the REPL's UI modules need viz/ and the UI libraries; the rest links without them (fuzzing, tests)
REPL_UI  := $(B)/repl/main.o $(B)/repl/tui.o $(B)/repl/cmd_view.o
REPL_OBJ := $(filter-out $(REPL_UI),$(REPL_SRC:%.c=$(B)/%.o))
VIZ_OBJ  := $(VIZ_SRC:%.c=$(B)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
BENCH_SRC := $(wildcard tests/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/%.c=$(B)/tests/%)

# the binary: ./metastate for the normal build, $(B)/metastate for others (debug)
BIN := $(if $(filter build,$(B)),metastate,$(B)/metastate)

.PHONY: all run test bench deps clean help debug test-debug

# all: the metastate binary and the test programs
all: $(BIN) $(TEST_BIN) $(BENCH_BIN)

# help: list the targets
help:
	@grep -hE '^# [a-z-]+:' Makefile mk/*.mk | sed 's/^# //'

# deps: install missing Debian packages (as root) or print the apt-get line
deps:
	@sh scripts/deps.sh

$(B)/%.o: %.c $(wildcard core/*.h repl/*.h viz/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libmscore.a: $(CORE_OBJ)
	ar rcs $@ $^

# -rdynamic and the whole of libmscore.a: libmscuda.so (opened by --backend cuda) calls core's functions
$(BIN): $(REPL_UI) $(REPL_OBJ) $(VIZ_OBJ) $(B)/libmscore.a
	$(CC) $(CFLAGS) -rdynamic $(filter-out $(B)/libmscore.a,$^) -Wl,--whole-archive $(B)/libmscore.a \
	    -Wl,--no-whole-archive -o $@ $(UI_LIBS) $(LDLIBS) -ldl

VIZ_TEST_OBJ := $(filter-out $(B)/viz/termdraw.o,$(VIZ_OBJ))

# the viz renderers run headless: their objects but not termdraw.o (ncurses), plus libpng
$(B)/tests/test_viz: tests/test_viz.c $(VIZ_TEST_OBJ) $(B)/libmscore.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(VIZ_TEST_OBJ) $(B)/libmscore.a -o $@ -lpng -lz $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/libmscore.a $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(B)/libmscore.a -o $@ $(LDLIBS)

# run: set up and start metastate on the shipped default model
run: deps metastate
	./metastate

# test: set up and run the whole test suite (prints N passed, N failed)
test: deps all
	@sh tests/run.sh

# bench: decode speed against the measured memory bandwidth (not a test)
bench: deps all
	@sh scripts/bench.sh

# debug: build everything with ASan and UBSan into build-debug/ (binary build-debug/metastate)
debug:
	$(MAKE) B=build-debug OPT="-O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" all

# test-debug: the whole test suite on the ASan+UBSan build
test-debug: debug
	@B=build-debug METASTATE=build-debug/metastate TUI_SLOW=4 sh tests/run.sh

# clean: remove build outputs
clean:
	rm -rf build build-debug metastate

# Further targets live in mk/*.mk (fuzzing, CUDA), one file per concern.
-include $(wildcard mk/*.mk)
