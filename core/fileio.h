/* fileio.h: the one way metastate opens a file to read and writes one.
 *
 * Reading (every reader: the model argument, `load`, `open`, `source`, -x,
 * `score @FILE`, the tokenizer's vocabulary, the tour): only a regular file
 * is read.  A FIFO, a directory, a device or a socket is refused with one
 * line naming what it is, before any read that could block (the open itself
 * is non-blocking, so a FIFO without a writer never hangs the program).
 * Symbolic links are followed when reading.
 *
 * Writing (every writer: `save`, `save-model`, `export`, `save-logits`,
 * `record`, `task --dump`): the policy, written down in docs/files.md:
 *   - the new content goes to an unnamed temporary file in the target's
 *     directory (O_TMPFILE), is fsync'd, linked under a private name and
 *     renamed over the target in one step, and the directory is fsync'd; so
 *     the name always holds the old file or the whole new one, and a writer
 *     killed while writing leaves nothing behind (where the file system has
 *     no O_TMPFILE, a named temporary TARGET.tmp.PID.XXXXXX is used);
 *   - a temporary left by a writer that died (its PID no longer runs) in the
 *     microseconds between the link and the rename, or by the named-temporary
 *     fallback, is removed by the next write of the same target;
 *   - the target must be a regular file or not exist: a symbolic link is
 *     refused (never followed, never replaced), and so is a directory, a
 *     FIFO, a device or a socket;
 *   - a file that is replaced keeps its permission bits; a new one gets
 *     0666 less the umask, as any program's would;
 *   - every failure (no space, the file-size limit, the open-file limit, a
 *     read-only place) is one line naming the file and the cause, and the
 *     old file is left as it was.
 *
 * What it is not: it knows no file format (safetensors.c, statefile.c and
 * the exporters build the bytes) and never prints.
 */
#ifndef MS_FILEIO_H
#define MS_FILEIO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ms.h"

/* strerror(en), followed by the limit behind it where there is one ("File
 * too large (the file-size limit, ulimit -f, is 4096 bytes)"), into buf. */
const char *ms_errno_reason(int en, char *buf, size_t cap);

/* "a directory", "a FIFO", "a character device", ... for a st_mode. */
const char *ms_file_kind(mode_t mode);

/* Open path for reading; only a regular file.  Returns the descriptor (the
 * caller closes it) and, when st is not NULL, its stat; or -1 with one line
 * in err: "PATH: cannot open: REASON" or "PATH: is a FIFO, not a regular
 * file".  `what` ("model", "script", ...) names the file's role in the
 * message when not NULL. */
int ms_open_read(const char *path, const char *what, struct stat *st, ms_err *err);

/* The same as a stdio stream ("r"), or NULL with err. */
FILE *ms_fopen_read(const char *path, const char *what, ms_err *err);

/* Read one line of at most max bytes (without its '\n'; a '\r' before it is
 * dropped) into *buf (grown as needed, the caller frees it); *len is its
 * length.  Returns 1 for a line, 0 at the end of the file, -1 with err for a
 * line longer than max bytes, a NUL byte in a line, or a read error (named
 * with `name` and the line number *lineno, which it advances). */
int ms_read_line(FILE *f, const char *name, long *lineno, size_t max, char **buf, size_t *cap,
                 size_t *len, ms_err *err);

/* ---- writing ---- */

/* Whether path may be written under the policy above, without writing it:
 * 0, or -1 with one line in err.  Writers check first so that a refused
 * target costs no work; ms_wfile_open checks again. */
int ms_check_write_target(const char *path, ms_err *err);

typedef struct ms_wfile ms_wfile;

/* Start writing path.  Returns the writer, or NULL with err (the target
 * refused, its directory missing or not writable, no descriptor left). */
ms_wfile *ms_wfile_open(const char *path, ms_err *err);

/* Append bytes.  Returns 0, or -1 with err (the first failure is kept and
 * ms_wfile_commit reports it too). */
int ms_wfile_write(ms_wfile *w, const void *buf, size_t len, ms_err *err);

/* The path being written (for messages). */
const char *ms_wfile_path(const ms_wfile *w);

/* Make the file whole under its name (fsync, link, rename, fsync of the
 * directory) and free w.  Returns 0, or -1 with err, the target unchanged
 * and no temporary left. */
int ms_wfile_commit(ms_wfile *w, ms_err *err);

/* Give up: nothing is written, no temporary is left; frees w (NULL is ok). */
void ms_wfile_abort(ms_wfile *w);

/* A whole buffer, or several pieces, written under the policy above. */
int ms_write_atomic(const char *path, const void *buf, size_t len, ms_err *err);
int ms_write_parts(const char *path, const void *const *bufs, const size_t *lens, int n, ms_err *err);

#endif
