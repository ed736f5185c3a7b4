/* textlog.h: the lines the output panel shows (command echoes, results,
 * errors), kept in a bounded ring.
 *
 * What it is: bytes in, lines out.  Text may arrive in pieces (gen streams
 * a token at a time): a piece that does not end a line continues the last
 * line when it has the same kind.  Terminal escape sequences (CSI, OSC and
 * two-byte ESC sequences) and carriage returns are dropped, since the panel
 * draws cells, not a byte stream; other control bytes are kept and shown by
 * the cell grid as U+FFFD.  A line longer than VZ_LOG_LINE_MAX bytes is cut
 * there (the rest of it is dropped, and the line ends with "…").
 *
 * What it is not: a terminal emulator or a file; the oldest lines are
 * forgotten once the ring is full.
 */
#ifndef VZ_TEXTLOG_H
#define VZ_TEXTLOG_H

#include <stddef.h>

#define VZ_LOG_LINE_MAX 65536

typedef enum { VZ_LOG_OUT = 0, VZ_LOG_ERR = 1, VZ_LOG_CMD = 2, VZ_LOG_NOTE = 3 } vz_log_kind;

typedef struct vz_log vz_log;

/* A log that keeps the last `cap` lines (cap ≥ 1).  NULL on allocation
 * failure. */
vz_log *vz_log_new(int cap);
void vz_log_free(vz_log *g);

/* Add len bytes of kind k.  Out of memory drops text, never crashes. */
void vz_log_add(vz_log *g, const char *bytes, size_t len, vz_log_kind k);
/* printf into the log as one whole line (a newline is added). */
void vz_log_addf(vz_log *g, vz_log_kind k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* End the open line, if any, so that the next text starts a new one. */
void vz_log_break(vz_log *g);

/* Lines held (≤ cap), and line i (0 = oldest) with its kind; NULL past the
 * end.  The pointer is valid until the next add. */
int vz_log_count(const vz_log *g);
const char *vz_log_line(const vz_log *g, int i, vz_log_kind *k);
/* A counter that changes whenever text is added (for "has it changed"). */
unsigned long vz_log_serial(const vz_log *g);

#endif
