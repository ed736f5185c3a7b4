/* fileio.c: opening files to read, and the atomic writer (see fileio.h for
 * the policy).
 *
 * The writer's steps, and why:
 *   1. lstat the target: a link or a non-regular file is refused up front;
 *   2. open the directory (for openat, linkat and the final fsync);
 *   3. remove temporaries of this target left by writers that died;
 *   4. O_TMPFILE in that directory: the data has no name while it is being
 *      written, so a SIGKILL, a full disk or the file-size limit leave
 *      nothing behind; a file system without it gets a named temporary;
 *   5. commit: fsync the data, link it as TARGET.tmp.PID.XXXXXX (linkat of
 *      /proc/self/fd/N, which needs no privilege), rename that over the
 *      target, fsync the directory.  The rename is the only step that
 *      changes what the target's name holds.
 */
#define _GNU_SOURCE
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *ms_file_kind(mode_t m)
{
    if (S_ISREG(m)) return "a regular file";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    return "not a regular file";
}

/* strerror(en), with the limit behind it where there is one */
const char *ms_errno_reason(int en, char *buf, size_t cap)
{
    struct rlimit rl;
    if (en == EFBIG && getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        snprintf(buf, cap, "%s (the file-size limit, ulimit -f, is %llu bytes)", strerror(en),
                 (unsigned long long)rl.rlim_cur);
    else if (en == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(buf, cap, "%s (the open-file limit, ulimit -n, is %llu)", strerror(en),
                 (unsigned long long)rl.rlim_cur);
    else if (en == ENOMEM && getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        snprintf(buf, cap, "%s (the address-space limit, ulimit -v, is %llu KiB)", strerror(en),
                 (unsigned long long)rl.rlim_cur / 1024);
    else
        snprintf(buf, cap, "%s", strerror(en));
    return buf;
}

/* ---- reading ---- */

int ms_open_read(const char *path, const char *what, struct stat *st_out, ms_err *err)
{
    char why[200];
    const char *role = what ? what : "file";
    /* O_NONBLOCK: opening a FIFO that has no writer would wait for one */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int en = errno;
        struct stat st;
        if (en != EMFILE && en != ENFILE && stat(path, &st) == 0 && !S_ISREG(st.st_mode))   /* a socket: ENXIO */
            ms_seterr(err, "%s: is %s; the %s must be a regular file", path, ms_file_kind(st.st_mode), role);
        else
            ms_seterr(err, "%s: cannot open the %s: %s", path, role, ms_errno_reason(en, why, sizeof why));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        ms_seterr(err, "%s: cannot stat the %s: %s", path, role, ms_errno_reason(errno, why, sizeof why));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        ms_seterr(err, "%s: is %s; the %s must be a regular file", path, ms_file_kind(st.st_mode), role);
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (st_out) *st_out = st;
    return fd;
}

FILE *ms_fopen_read(const char *path, const char *what, ms_err *err)
{
    int fd = ms_open_read(path, what, NULL, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        char why[200];
        ms_seterr(err, "%s: cannot open: %s", path, ms_errno_reason(errno, why, sizeof why));
        close(fd);
    }
    return f;
}

int ms_read_line(FILE *f, const char *name, long *lineno, size_t max, char **buf, size_t *cap,
                 size_t *len, ms_err *err)
{
    size_t n = 0;
    int c, any = 0;
    errno = 0;
    while ((c = getc(f)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (n >= max) {
            ms_seterr(err, "%s:%ld: the line is longer than %zu bytes (the longest a command may be); "
                      "stopped reading", name, *lineno + 1, max);
            return -1;
        }
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            while (nc < n + 2) nc *= 2;
            if (nc > max + 2) nc = max + 2;
            char *b = realloc(*buf, nc);
            if (!b) {
                ms_seterr(err, "%s:%ld: out of memory for the line", name, *lineno + 1);
                return -1;
            }
            *buf = b;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && ferror(f)) {
        char why[200];
        ms_seterr(err, "%s:%ld: cannot read: %s", name, *lineno + 1, ms_errno_reason(errno ? errno : EIO, why, sizeof why));
        return -1;
    }
    if (!any) return 0;
    ++*lineno;
    if (!*buf) {   /* an empty line before anything was allocated */
        *buf = malloc(1);
        if (!*buf) { ms_seterr(err, "%s:%ld: out of memory", name, *lineno); return -1; }
        *cap = 1;
    }
    if (n && (*buf)[n - 1] == '\r') n--;
    (*buf)[n] = 0;
    const char *z = memchr(*buf, 0, n);
    if (z) {
        ms_seterr(err, "%s:%ld: the line holds a NUL byte (at byte %zu); commands are text", name, *lineno,
                  (size_t)(z - *buf) + 1);
        return -1;
    }
    *len = n;
    return 1;
}

/* ---- writing ---- */

struct ms_wfile {
    char *path;      /* as given */
    char *dir;       /* its directory ("." for a bare name) */
    char *base;      /* its last component */
    int dfd;         /* the directory */
    int fd;          /* the data */
    int tmpfile;     /* 1: O_TMPFILE (no name yet); 0: named temporary `tmp` */
    char *tmp;       /* the temporary's name in dir (named fallback; or the link made at commit) */
    mode_t mode;     /* permission bits to give the file */
    int err_no;      /* first write failure (errno), 0 none */
};

const char *ms_wfile_path(const ms_wfile *w) { return w->path; }

static mode_t fio_umask(void)
{
    static int done;
    static mode_t um;
    if (!done) {
        um = umask(022);
        umask(um);
        done = 1;
    }
    return um;
}

/* A test hook: METASTATE_TEST_STOP_IN_WRITE=data|linked makes the writer
 * stop itself (SIGSTOP) with all data written but nothing linked, or with
 * the temporary linked but not yet renamed, so that a test can kill it at
 * that exact point.  Unset (always, outside tests) it does nothing. */
static void fio_test_stop(const char *where)
{
    const char *s = getenv("METASTATE_TEST_STOP_IN_WRITE");
    if (s && !strcmp(s, where)) raise(SIGSTOP);
}

int ms_check_write_target(const char *path, ms_err *err)
{
    struct stat st;
    size_t n = strlen(path);
    if (!n) { ms_seterr(err, "the file name is empty"); return -1; }
    if (path[n - 1] == '/') {
        ms_seterr(err, "%s: names a directory; give a file name", path);
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            ms_seterr(err, "%s: is a symbolic link; files are written only as regular files, never through "
                      "a link (give the path of the file it points to, or remove the link)", path);
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            ms_seterr(err, "%s: exists and is %s; files are written only as regular files", path,
                      ms_file_kind(st.st_mode));
            return -1;
        }
    }
    return 0;
}

/* Unlink BASE.tmp.PID.XXXXXX entries of dead writers (same owner only). */
static void fio_clean_debris(int dfd, const char *base)
{
    int d2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d2 < 0) return;
    DIR *dir = fdopendir(d2);
    if (!dir) { close(d2); return; }
    size_t bl = strlen(base);
    struct dirent *de;
    while ((de = readdir(dir))) {
        const char *nm = de->d_name;
        if (strncmp(nm, base, bl) || strncmp(nm + bl, ".tmp.", 5)) continue;
        const char *p = nm + bl + 5;
        char *end;
        errno = 0;
        long pid = strtol(p, &end, 10);
        if (errno || end == p || *end != '.' || strlen(end + 1) != 6 || pid <= 0) continue;
        if (pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive, or not ours to judge */
        struct stat st;
        if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
            continue;
        unlinkat(dfd, nm, 0);
    }
    closedir(dir);
}

/* a fresh "BASE.tmp.PID.XXXXXX" (6 random letters) */
static void fio_tmp_name(const char *base, char *buf, size_t cap)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static uint64_t ctr;
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32 ^ ++ctr * 0xbf58476d1ce4e5b9ull;
    char r[7];
    for (int i = 0; i < 6; i++) {
        x ^= x >> 31;
        x *= 0x94d049bb133111ebull;
        r[i] = al[(x >> 33) % (sizeof al - 1)];
    }
    r[6] = 0;
    snprintf(buf, cap, "%s.tmp.%ld.%s", base, (long)getpid(), r);
}

void ms_wfile_abort(ms_wfile *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp && w->dfd >= 0) unlinkat(w->dfd, w->tmp, 0);
    if (w->dfd >= 0) close(w->dfd);
    free(w->path);
    free(w->dir);
    free(w->base);
    free(w->tmp);
    free(w);
}

ms_wfile *ms_wfile_open(const char *path, ms_err *err)
{
    char why[200];
    if (ms_check_write_target(path, err) != 0) return NULL;
    ms_wfile *w = calloc(1, sizeof *w);
    if (!w) { ms_seterr(err, "%s: out of memory", path); return NULL; }
    w->dfd = w->fd = -1;
    w->path = strdup(path);
    const char *slash = strrchr(path, '/');
    if (slash) {
        w->dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
        w->base = strdup(slash + 1);
    } else {
        w->dir = strdup(".");
        w->base = strdup(path);
    }
    if (!w->path || !w->dir || !w->base) {
        ms_seterr(err, "%s: out of memory", path);
        ms_wfile_abort(w);
        return NULL;
    }
    if (!strcmp(w->base, ".") || !strcmp(w->base, "..")) {
        ms_seterr(err, "%s: names a directory; give a file name", path);
        ms_wfile_abort(w);
        return NULL;
    }
    w->dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dfd < 0) {
        int en = errno;
        ms_seterr(err, "%s: cannot write there: its directory %s: %s", path,
                  en == ENOTDIR ? "is not a directory" : en == ENOENT ? "does not exist" : "cannot be opened",
                  ms_errno_reason(en, why, sizeof why));
        ms_wfile_abort(w);
        return NULL;
    }
    struct stat st;
    mode_t um = fio_umask();
    w->mode = 0666 & ~um;
    if (fstatat(w->dfd, w->base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) w->mode = st.st_mode & 0777;
    fio_clean_debris(w->dfd, w->base);
    /* O_TMPFILE needs /proc/self/fd to be linked without privilege */
    if (access("/proc/self/fd", X_OK) == 0) {
        w->fd = openat(w->dfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, w->mode);
        if (w->fd >= 0) {
            w->tmpfile = 1;
            fchmod(w->fd, w->mode);   /* the umask applied to O_TMPFILE's mode; a replaced file keeps its own */
        } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT) {
            int en = errno;
            ms_seterr(err, "%s: cannot create a file in %s: %s", path, w->dir, ms_errno_reason(en, why, sizeof why));
            ms_wfile_abort(w);
            return NULL;
        }
    }
    if (w->fd < 0) {   /* a named temporary */
        char nm[NAME_MAX + 64];
        if (strlen(w->base) > NAME_MAX - 24) {
            ms_seterr(err, "%s: the file name is too long for a temporary beside it (at most %d bytes)", path,
                      NAME_MAX - 24);
            ms_wfile_abort(w);
            return NULL;
        }
        for (int tries = 0; tries < 100 && w->fd < 0; tries++) {
            fio_tmp_name(w->base, nm, sizeof nm);
            w->fd = openat(w->dfd, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (w->fd < 0 && errno != EEXIST) break;
        }
        if (w->fd < 0) {
            int en = errno;
            ms_seterr(err, "%s: cannot create a temporary file beside it: %s", path, ms_errno_reason(en, why, sizeof why));
            ms_wfile_abort(w);
            return NULL;
        }
        w->tmp = strdup(nm);
        if (!w->tmp) {
            unlinkat(w->dfd, nm, 0);
            ms_seterr(err, "%s: out of memory", path);
            ms_wfile_abort(w);
            return NULL;
        }
        fchmod(w->fd, w->mode);
    }
    return w;
}

static int fio_fail(ms_wfile *w, ms_err *err, const char *step, int en)
{
    char why[200];
    ms_seterr(err, "%s: %s: %s; nothing was written", w->path, step, ms_errno_reason(en, why, sizeof why));
    return -1;
}

int ms_wfile_write(ms_wfile *w, const void *buf, size_t len, ms_err *err)
{
    if (w->err_no) return fio_fail(w, err, "cannot write", w->err_no);
    const char *p = buf;
    while (len) {
        ssize_t k = write(w->fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (k < 0) {
            if (errno == EINTR) continue;
            w->err_no = errno;
            return fio_fail(w, err, "cannot write", w->err_no);
        }
        if (k == 0) {
            w->err_no = EIO;
            return fio_fail(w, err, "cannot write", w->err_no);
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int ms_wfile_commit(ms_wfile *w, ms_err *err)
{
    int rc = -1;
    if (w->err_no) { fio_fail(w, err, "cannot write", w->err_no); goto out; }
    fio_test_stop("data");
    if (fsync(w->fd) != 0) { fio_fail(w, err, "fsync failed", errno); goto out; }
    if (w->tmpfile) {
        char proc[64], nm[NAME_MAX + 64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
        int ok = 0;
        for (int tries = 0; tries < 100 && !ok; tries++) {
            fio_tmp_name(w->base, nm, sizeof nm);
            if (linkat(AT_FDCWD, proc, w->dfd, nm, AT_SYMLINK_FOLLOW) == 0) ok = 1;
            else if (errno != EEXIST) break;
        }
        if (!ok) { fio_fail(w, err, "cannot link the new file into its directory", errno); goto out; }
        w->tmp = strdup(nm);
        if (!w->tmp) { unlinkat(w->dfd, nm, 0); fio_fail(w, err, "cannot link", ENOMEM); goto out; }
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) { fio_fail(w, err, "close failed", errno); goto out; }
    fio_test_stop("linked");
    /* the target may have become a link or a directory since the check:
     * renameat replaces a link itself and fails on a directory, so no
     * write ever goes through a link */
    if (renameat(w->dfd, w->tmp, w->dfd, w->base) != 0) {
        fio_fail(w, err, "cannot rename the new file into place", errno);
        goto out;
    }
    free(w->tmp);
    w->tmp = NULL;   /* it is the target now */
    fsync(w->dfd);   /* the rename itself is durable; the file is whole either way */
    rc = 0;
out:
    ms_wfile_abort(w);
    return rc;
}

int ms_write_parts(const char *path, const void *const *bufs, const size_t *lens, int n, ms_err *err)
{
    ms_wfile *w = ms_wfile_open(path, err);
    if (!w) return -1;
    for (int i = 0; i < n; i++)
        if (ms_wfile_write(w, bufs[i], lens[i], err) != 0) {
            ms_wfile_abort(w);
            return -1;
        }
    return ms_wfile_commit(w, err);
}

int ms_write_atomic(const char *path, const void *buf, size_t len, ms_err *err)
{
    const void *b[1] = { buf };
    size_t l[1] = { len };
    return ms_write_parts(path, b, l, 1, err);
}
