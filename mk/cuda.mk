# cuda.mk: the CUDA backend (core/cuda/), built whenever nvcc exists, and a
# CPU emulation of the same source that builds everywhere.  Included by the
# Makefile.
#
#   make cuda           build $(B)/libmscuda.a and the CUDA test and benchmark
#   make test-cuda      run the CUDA test (prints "skipped: ..." without a GPU)
#   make bench-cuda     run the CUDA benchmark (the same without a GPU)
#   make test-cuda-emu  the kernels and host code on the CPU emulator (g++ only)
#
# tests/test_cuda.c and tests/bench_cuda.c are picked up by the Makefile's
# tests/test_*.c and tests/bench_*.c, so `make` builds them and `make test`
# runs test_cuda; the rules here link them with the CUDA libraries, or,
# without nvcc, build them as programs that say why they skip.
# $(MS_CUDA_LIB) and $(MS_CUDA_LDLIBS) are what a program that offers
# `--backend cuda` links: libmscuda.a and the CUDA runtime and cuBLAS, or
# libmscuda_stub.a (core/cuda/ms_cuda_stub.c), whose ms_cuda_available() says
# "built without CUDA".  Link order: $(MS_CUDA_LIB) before libmscore.a.
#
# NVCC= (empty) builds as if nvcc were missing.  CUDA_ARCH picks the targets:
# sm_90 machine code (H100, H200) and compute_90 PTX, which newer GPUs compile
# at load; older GPUs need CUDA_ARCH with their own -gencode.

# nvcc compiles host code with g++, and the emulator is C++: without one, neither
HAVE_CXX   := $(shell command -v $(CXX) 2>/dev/null)
ifeq ($(origin NVCC),undefined)
NVCC       := $(if $(HAVE_CXX),$(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc)))
endif
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIBDIR ?= $(CUDA_HOME)/lib64
CUDA_ARCH  ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS  ?= -O3 -std=c++17 -lineinfo
CUDA_CU    := $(wildcard core/cuda/*.cu)
CUDA_HDR   := $(wildcard core/cuda/*.h core/cuda/*.cuh core/*.h)

.PHONY: cuda cuda-carry test-cuda bench-cuda test-cuda-emu

ifneq ($(strip $(NVCC)),)
CUDA_OBJ       := $(CUDA_CU:%.cu=$(B)/%.o)
MS_CUDA_LIB    := $(B)/libmscuda.a
MS_CUDA_LDLIBS := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart_static -ldl -lrt -lstdc++
MS_CUDA_DEFS   :=

$(B)/core/cuda/%.o: core/cuda/%.cu $(CUDA_HDR) mk/cuda.mk
	@mkdir -p $(dir $@)
	PATH="$(CUDA_HOME)/bin:$$PATH" $(NVCC) $(NVCCFLAGS) $(CUDA_ARCH) -Xcompiler -fPIC -Icore -c $< -o $@

$(B)/libmscuda.a: $(CUDA_OBJ)
	ar rcs $@ $^

# libmscuda.so: what `metastate --backend cuda` opens at run time (core/cuda_load.c);
# the ms_* functions of core it calls come from the program (linked -rdynamic).
# The objects are position-independent, so the archive and the library share them.
$(B)/libmscuda.so: $(CUDA_OBJ)
	$(CXX) -shared -o $@ $^ -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart_static -ldl -lrt -lpthread

all: $(B)/libmscuda.so

# cuda: the CUDA backend library, test and benchmark (needs nvcc)
cuda: $(B)/libmscuda.a $(B)/tests/test_cuda $(B)/tests/bench_cuda

# cuda-carry: test_cuda and bench_cuda that run on a GPU machine lacking OpenBLAS and
# cJSON (scripts/gpu_check.sh's fallback): a plain-C sgemv, libcjson and libgomp beside them
CARRY_B := $(B)/gpu-carry
$(CARRY_B)/cblas_shim.o: core/cuda/carry/cblas_shim.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(CARRY_B)/test_cuda $(CARRY_B)/bench_cuda: $(CARRY_B)/%: tests/%.c $(MS_CUDA_LIB) $(B)/libmscore.a $(CARRY_B)/cblas_shim.o $(CUDA_HDR)
	$(CC) $(CFLAGS) -Itests $< $(MS_CUDA_LIB) $(B)/libmscore.a $(CARRY_B)/cblas_shim.o -o $@ \
	    -Wl,-rpath,'$$ORIGIN' $(MS_CUDA_LDLIBS) -lcjson -lm -lpthread
	strip $@

# and metastate itself with libmscuda.so and its libraries (xz, unpacked to /tmp/mslib
# there by ms.sh's caller), for tests/test_backend.sh on the GPU machine
cuda-carry: $(CARRY_B)/test_cuda $(CARRY_B)/bench_cuda $(BIN) $(B)/libmscuda.so
	cp -L $$($(CC) -print-file-name=libcjson.so.1) $$($(CC) -print-file-name=libgomp.so.1) $(CARRY_B)/
	rm -rf $(CARRY_B)/ms && mkdir -p $(CARRY_B)/ms/lib
	cp $(BIN) $(B)/libmscuda.so $(CARRY_B)/ms/ && cp core/cuda/carry/ms.sh $(CARRY_B)/ms/ms && chmod +x $(CARRY_B)/ms/ms
	for l in $$(ldd $(BIN) | awk '/=> \//{print $$3}'); do case $${l##*/} in libc.so.*|libm.so.*|libgcc_s.so.*|libz.so.*) ;; \
	    *) cp -L $$l $(CARRY_B)/ms/lib/ ;; esac; done
	cd $(CARRY_B)/ms && tar cJf libs.tar.xz lib && rm -rf lib
	@du -sh $(CARRY_B)
else
MS_CUDA_LIB    := $(B)/libmscuda_stub.a
MS_CUDA_LDLIBS :=
MS_CUDA_DEFS   := -DMS_NO_CUDA

# an archive like libmscuda.a, so that a program links it only when it calls it
$(B)/libmscuda_stub.a: $(B)/core/cuda/ms_cuda_stub.o
	ar rcs $@ $^

cuda cuda-carry:
	@echo "$@: nvcc (not on PATH, not in /usr/local/cuda/bin) or $(CXX) not found: nothing to build"; exit 1
endif

$(B)/tests/test_cuda: tests/test_cuda.c $(MS_CUDA_LIB) $(B)/libmscore.a $(wildcard tests/*.h) $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(MS_CUDA_DEFS) $< $(MS_CUDA_LIB) $(B)/libmscore.a -o $@ $(MS_CUDA_LDLIBS) $(LDLIBS)

$(B)/tests/bench_cuda: tests/bench_cuda.c $(MS_CUDA_LIB) $(B)/libmscore.a $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MS_CUDA_DEFS) $< $(MS_CUDA_LIB) $(B)/libmscore.a -o $@ $(MS_CUDA_LDLIBS) $(LDLIBS)

# test-cuda: every kernel and whole models against the CPU on the GPU (skips without one)
test-cuda: $(B)/tests/test_cuda
	MS_FIXTURES=tests/fixtures $(B)/tests/test_cuda

# bench-cuda: decode tok/s, bytes per token against the copy bandwidth, sweep throughput
bench-cuda: $(B)/tests/bench_cuda
	$(B)/tests/bench_cuda

# ---- the emulator: core/cuda/*.cu compiled as C++ against emu/msc_emu.h ----
EMU_B        := $(B)/cuda-emu
EMU_OBJ      := $(CUDA_CU:core/cuda/%.cu=$(EMU_B)/%.o) $(EMU_B)/msc_emu.o
EMU_CXXFLAGS := -O2 -g -fPIC -std=c++17 -DMSC_EMU -Icore -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas

$(EMU_B)/%.o: core/cuda/%.cu $(CUDA_HDR) core/cuda/emu/msc_emu.h mk/cuda.mk
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

$(EMU_B)/msc_emu.o: core/cuda/emu/msc_emu.cpp core/cuda/emu/msc_emu.h mk/cuda.mk
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

$(EMU_B)/libmscuda_emu.a: $(EMU_OBJ)
	ar rcs $@ $^

# the emulator as the run-time backend (tests/test_backend.sh: metastate
# --backend cuda with METASTATE_CUDA_LIB pointing here)
$(B)/libmscuda_emu.so: $(EMU_OBJ)
	$(CXX) -shared -o $@ $^

$(B)/tests/test_cuda_emu: tests/test_cuda.c $(EMU_B)/libmscuda_emu.a $(B)/libmscore.a $(wildcard tests/*.h) $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(EMU_B)/libmscuda_emu.a $(B)/libmscore.a -o $@ -lstdc++ $(LDLIBS)

# test-cuda-emu: the CUDA test on the CPU emulator (random block and thread order; MSC_EMU_SEED)
test-cuda-emu: $(B)/tests/test_cuda_emu
	MS_FIXTURES=tests/fixtures $(B)/tests/test_cuda_emu

# make test runs every $(B)/tests/test_*: the emulated CUDA test with them (12 tokens per
# model, about 20 s), wherever a C++ compiler is installed
ifneq ($(HAVE_CXX),)
all: $(B)/tests/test_cuda_emu $(B)/libmscuda_emu.so
endif
