# fuzz.mk: the libFuzzer targets in fuzz/ (one fuzz/fuzz_<name>.c each), and
# their replay as part of `make test`.  Included by the Makefile.
#
#   make fuzz                 build, then run every target FUZZ_SECONDS (60) each
#                             (FUZZ_FLAGS=-seed=1 in the environment: a repeatable run, as CI does)
#   make fuzz FUZZ=vocab      only the named targets
#   make fuzz-build           only build them, into build/fuzz/
#   make fuzz-replay          replay fuzz/corpus and fuzz/regress (what `make test` runs)
#
# The targets are built with clang (libFuzzer, ASan, UBSan; UBSan findings
# abort so that libFuzzer keeps the input), core/ and repl/ instrumented for
# coverage.  New inputs go to build/fuzz/corpus/<name>/ (fuzz/corpus/<name>/
# holds the committed seeds and is never written), crashes to
# build/fuzz/crashes/<name>/.  A crash, once fixed, is kept in
# fuzz/regress/<name>/ so that `make test` replays it (build/tests/test_fuzz_regress,
# the same entry functions compiled by $(CC) with a plain main()).

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_B       := build/fuzz
FUZZ_ALL     := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ         ?= $(FUZZ_ALL)
FUZZ_HDR     := $(wildcard fuzz/*.h core/*.h repl/*.h)
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer -std=gnu11 -fopenmp -Icore -Irepl -Ifuzz \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CORE    := $(CORE_SRC:%.c=$(FUZZ_B)/obj/%.o)
# the command layer without the UI modules (the Makefile's REPL_OBJ), so no viz/ or UI libraries
FUZZ_REPL    := $(patsubst $(B)/%,$(FUZZ_B)/obj/%,$(REPL_OBJ))

.PHONY: fuzz fuzz-build fuzz-replay fuzz-deps

# clang and libFuzzer's runtime (installed as root, or the apt-get line printed)
fuzz-deps:
	@sh scripts/deps.sh fuzz

$(FUZZ_B)/obj/%.o: %.c $(FUZZ_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_B)/libcore.a: $(FUZZ_CORE)
	ar rcs $@ $^

$(FUZZ_B)/librepl.a: $(FUZZ_REPL)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

# archives, so each target pulls in only what it calls
$(FUZZ_B)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_HDR) $(FUZZ_B)/librepl.a $(FUZZ_B)/libcore.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_B)/librepl.a $(FUZZ_B)/libcore.a -o $@ $(LDLIBS)

# fuzz-build: build the libFuzzer targets into build/fuzz/ (needs clang)
fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ:%=$(FUZZ_B)/fuzz_%)

# fuzz: run each target FUZZ_SECONDS (default 60); prints runs, exec/s, coverage, findings
fuzz: fuzz-build
	@st=0; for t in $(FUZZ); do sh fuzz/run.sh $$t $(FUZZ_SECONDS) || st=1; done; exit $$st

# ---- the replay test, built with the normal compiler and flags into $(B) ----

FUZZ_REPLAY_OBJ := $(FUZZ_ALL:%=$(B)/fuzz-replay/fuzz_%.o)

$(FUZZ_REPLAY_OBJ): $(B)/fuzz-replay/fuzz_%.o: fuzz/fuzz_%.c $(FUZZ_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ifuzz -DFUZZ_ENTRY=fuzz_$* -c $< -o $@

# repl/ as an archive (the Makefile's REPL_OBJ: the command layer without the
# UI modules), so the command target pulls in only what it calls
$(B)/fuzz-replay/librepl.a: $(REPL_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(B)/tests/test_fuzz_regress: fuzz/replay.c $(FUZZ_REPLAY_OBJ) $(B)/fuzz-replay/librepl.a $(B)/libmscore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) '-DFUZZ_TARGETS=$(foreach t,$(FUZZ_ALL),T($(t)))' $^ -o $@ $(LDLIBS)

all: $(B)/tests/test_fuzz_regress

# fuzz-replay: run every committed fuzz input through the normal build (part of make test)
fuzz-replay: $(B)/tests/test_fuzz_regress
	$(B)/tests/test_fuzz_regress
