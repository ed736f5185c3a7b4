/* fuzz.h: what every fuzz target shares: the entry point's name, a way to
 * hand bytes to loaders that only take a path, and a check that aborts.
 *
 * Each fuzz/fuzz_<target>.c defines FUZZ_ENTRY(data, size).  Built with
 * clang -fsanitize=fuzzer (make fuzz) it is libFuzzer's
 * LLVMFuzzerTestOneInput; built by the normal compiler for `make test`
 * (fuzz/replay.c, build/tests/test_fuzz_regress) it is renamed with
 * -DFUZZ_ENTRY=fuzz_<target> and replays the committed corpus and every
 * input that once crashed.  So a harness is plain C with no libFuzzer API
 * beyond that one function.
 *
 * What it is not: no oracle beyond "no crash, no sanitizer report, and the
 * invariants a target states with FUZZ_CHECK".
 */
#ifndef MS_FUZZ_H
#define MS_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif
int FUZZ_ENTRY(const uint8_t *data, size_t size);

/* An invariant of the code under test: a failure is a finding, so it aborts
 * (libFuzzer saves the input; the replay test dies with the message). */
#define FUZZ_CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fprintf(stderr, "\n"); \
            abort(); \
        } \
    } while (0)

/* Put data in an in-memory file and return a path that opens it
 * (/proc/self/fd/N of a memfd, made once per process and rewritten each
 * time).  The loaders then run exactly as on a real file: open, fstat,
 * mmap.  A memfd leaves nothing behind when a run crashes and cannot
 * collide with a second fuzzer on the same machine.  NULL if the kernel
 * refuses (then the target skips the input). */
static inline const char *fuzz_memfile(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("metastate-fuzz", MFD_CLOEXEC);
        if (fd < 0) return NULL;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0)) return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, data + done, size - done, (off_t)done);
        if (w <= 0) return NULL;
        done += (size_t)w;
    }
    return path;
}

#endif
