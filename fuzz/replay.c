/* replay.c: the fuzz targets without libFuzzer, for `make test`: every
 * file in fuzz/corpus/<target>/ and fuzz/regress/<target>/ is run through
 * the target's entry function, in the normal build (and in `make debug`,
 * under ASan and UBSan).  A crash, a sanitizer report or a failed
 * FUZZ_CHECK kills the program, and the file that did it is named on
 * stderr (a signal handler that chains to the previous one, and the
 * sanitizers' death callback).
 *
 * usage: test_fuzz_regress [-v] [FUZZ_DIR]          (default: fuzz)
 *        test_fuzz_regress TARGET FILE...          (replay given files)
 *
 * The targets are compiled with -DFUZZ_ENTRY=fuzz_<target> (mk/fuzz.mk)
 * and listed in FUZZ_TARGETS below.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T(name) int fuzz_##name(const uint8_t *data, size_t size);
FUZZ_TARGETS
#undef T

static const struct { const char *name; int (*fn)(const uint8_t *, size_t); } targets[] = {
#define T(name) { #name, fuzz_##name },
    FUZZ_TARGETS
#undef T
};
#define N_TARGETS (int)(sizeof targets / sizeof targets[0])

static int verbose;

/* ---- naming the input that crashed ---- */

static const char *current;    /* the file being run, or NULL */
static struct sigaction old_act[32];
static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static void say_current(void)
{
    if (!current) return;
    static const char a[] = "test_fuzz_regress: crashed on ", b[] = "\n";
    ssize_t r = write(2, a, sizeof a - 1);
    r = write(2, current, strlen(current));
    r = write(2, b, 1);
    (void)r;
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
    say_current();
    current = NULL;
    struct sigaction *o = &old_act[sig];
    if (o->sa_flags & SA_SIGINFO) {   /* chain: e.g. ASan's SEGV report */
        sigaction(sig, o, NULL);
        o->sa_sigaction(sig, si, uc);
        return;
    }
    if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
        sigaction(sig, o, NULL);
        o->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ASan/UBSan report through this when they end the program (weak: absent
 * in a build without sanitizers) */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void install_crash_report(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof crash_sigs / sizeof crash_sigs[0]; i++)
        sigaction(crash_sigs[i], &sa, &old_act[crash_sigs[i]]);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(say_current);
}

/* Run one file; returns 0, or -1 if it cannot be read (an error: a
 * committed input that vanished is a broken test). */
static int run_file(int ti, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "test_fuzz_regress: cannot open %s\n", path); return -1; }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) { fclose(f); fprintf(stderr, "test_fuzz_regress: out of memory\n"); return -1; }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        unsigned char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); fprintf(stderr, "test_fuzz_regress: cannot read %s\n", path); return -1; }
    if (verbose) { printf("  %s %s (%zu bytes)\n", targets[ti].name, path, len); fflush(stdout); }
    /* an exact-size copy, so reading one byte too far is a sanitizer report */
    unsigned char *exact = malloc(len ? len : 1);
    if (exact) memcpy(exact, buf, len);
    free(buf);
    if (!exact) return -1;
    current = path;
    targets[ti].fn(exact, len);
    current = NULL;
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular file of dir in name order; *n files run, -1 on a read error. */
static int run_dir(int ti, const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;   /* a target without regressions has no folder */
    char **names = NULL;
    int cnt = 0, cap = 0, rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (cnt == cap) {
            char **nn = realloc(names, sizeof *nn * (size_t)(cap = cap ? 2 * cap : 64));
            if (!nn) { rc = -1; break; }
            names = nn;
        }
        names[cnt] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[cnt]) { rc = -1; break; }
        sprintf(names[cnt], "%s/%s", dir, e->d_name);
        cnt++;
    }
    closedir(d);
    qsort(names, (size_t)cnt, sizeof *names, cmp_str);
    for (int i = 0; i < cnt; i++) {
        struct stat st;
        if (!rc && !stat(names[i], &st) && S_ISREG(st.st_mode)) {
            if (run_file(ti, names[i])) rc = -1;
            else (*n)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    install_crash_report();
    if (argc > 1 && !strcmp(argv[1], "-v")) { verbose = 1; argc--; argv++; }
    if (argc > 2) {   /* TARGET FILE... */
        for (int ti = 0; ti < N_TARGETS; ti++)
            if (!strcmp(targets[ti].name, argv[1])) {
                for (int i = 2; i < argc; i++)
                    if (run_file(ti, argv[i])) return 1;
                printf("test_fuzz_regress: %s: %d files replayed\n", argv[1], argc - 2);
                return 0;
            }
        fprintf(stderr, "test_fuzz_regress: unknown target '%s'\n", argv[1]);
        return 2;
    }
    const char *root = argc > 1 ? argv[1] : "fuzz";
    int fail = 0, total = 0;
    for (int ti = 0; ti < N_TARGETS; ti++) {
        char dir[4096];
        int nc, nr;
        snprintf(dir, sizeof dir, "%s/corpus/%s", root, targets[ti].name);
        if (run_dir(ti, dir, &nc)) fail = 1;
        snprintf(dir, sizeof dir, "%s/regress/%s", root, targets[ti].name);
        if (run_dir(ti, dir, &nr)) fail = 1;
        /* a target with no seeds means the corpus was not found: fail, not pass */
        int ok = nc > 0;
        if (!ok) fail = 1;
        printf("%s fuzz %-12s %4d corpus + %3d regress inputs replayed, no crash%s\n", ok ? "  ok  " : "  FAIL",
               targets[ti].name, nc, nr, ok ? "" : " (no corpus found: run from the repository root)");
        total += nc + nr;
    }
    printf("test_fuzz_regress: %d targets, %d inputs, %s\n", N_TARGETS, total, fail ? "FAILED" : "ok");
    return fail;
}
