/* args.h: the checking side of the command line: splitting a line into
 * words, strict number parsing, the escapes of `feed`, quoting user input
 * for messages, and the nearest known name for a typo.
 *
 * What it is: small pure functions with no state, used by the command
 * handlers so that every argument is checked the same way before anything
 * changes.  What it is not: it knows no commands and prints nothing.
 */
#ifndef MS_ARGS_H
#define MS_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Split line into words at ASCII whitespace; a word may be double-quoted
 * ("a b", with \" and \\ inside).  *argv is one malloc'd block (free it
 * alone); *argc its count.  Returns 0, or -1 with a message in err (an
 * unterminated quote). */
int arg_split(const char *line, char ***argv, int *argc, char *err, size_t errcap);

/* Strict integers and reals: the whole string must be the number (no
 * spaces, no trailing junk, decimal only), finite, and within [lo, hi].
 * Return 0 and set *out, or -1. */
int arg_long(const char *s, long lo, long hi, long *out);
int arg_u64(const char *s, uint64_t *out);
int arg_double(const char *s, double lo, double hi, double *out);

/* Decode the escapes \n \t \r \\ \xNN of s into a malloc'd buffer *out of
 * *len bytes (NUL-terminated too).  Returns 0, or -1 with err naming the
 * bad escape and its column (1-based). */
int arg_unescape(const char *s, char **out, size_t *len, char *err, size_t errcap);

/* A printable, bounded rendering of user input for messages: control bytes
 * and invalid UTF-8 as \xNN (\n \t \r by name), \ and " escaped (so it
 * can sit between quotes and be typed back to `feed`), at most about 48
 * visible bytes then "...".  Returns buf. */
const char *arg_quote(const char *s, char *buf, size_t cap);
/* same for len bytes that may hold NULs, with no length bound but cap */
const char *arg_quote_n(const char *s, size_t len, char *buf, size_t cap);

/* Bytes of the valid UTF-8 character at p (1 for ASCII, NUL included; 2-4
 * otherwise), or 0 if the bytes there are not one (bad, overlong,
 * surrogate, truncated at left). */
int arg_utf8_len(const unsigned char *p, size_t left);

/* Index of the name in names[0..n) nearest to word by edit distance
 * (case-insensitive), or -1 if none is within a plausible distance. */
int arg_nearest(const char *word, const char *const *names, int n);

#endif
