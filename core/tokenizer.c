/* tokenizer.c: the three tokenizers of MODEL.md 6: `bytes` (id = byte),
 * `rwkv-world` (rwkv_vocab_v20230424.txt, greedy longest match with a trie)
 * and `words` (a list of whole words, split on ASCII whitespace).
 *
 * What it is: a parser for the World vocabulary file (the Python-literal
 * subset that file uses, checked line by line), a byte trie built from the
 * sorted tokens and stored breadth first in flat arrays (each step of the
 * match is one memchr over a node's sorted child labels, so encoding is
 * linear in the text times the longest token), and a streaming UTF-8
 * decoder that holds back split characters and replaces invalid sequences by
 * U+FFFD (maximal subparts, as Python's errors="replace" does).
 *
 * What it is not: not a general Python literal parser (no raw, triple-quoted
 * or \U / \N{} / octal escapes: the vocabulary does not use them, and a line
 * that does is refused), not a BPE (the World tokenizer is greedy by
 * definition), and it knows nothing of special tokens beyond id 0 = end of
 * text.  A tokenizer is immutable after creation; nothing here prints.
 *
 * Output sizes for ms_tok_decode_stream: one call writes at most
 * 3 * (token length + 3) bytes and a NUL (every byte may become U+FFFD), so
 * cap >= 400 never drops anything for World and bytes; for `words`, the word
 * length + 2.  A character that does not fit in cap is dropped with all that
 * follows it in that call, never cut.
 */
#include "tokenizer.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORLD_VOCAB 65536
#define MAX_NODES   (1u << 31)  /* node ids are uint32_t */

struct ms_tokenizer {
    ms_tok_kind kind;
    int vocab;
    /* bytes of token i: arena[off[i] .. off[i] + len[i]) */
    char *arena;         /* (total token bytes) */
    uint32_t *off;       /* (vocab) */
    uint32_t *len;       /* (vocab) */
    /* world: trie (see trie_child); node 0 is the root, child 0 means "none" */
    uint32_t *first;     /* (n_nodes) index of the first child */
    uint16_t *nchild;    /* (n_nodes) number of children, 0..256 */
    unsigned char *label;/* (n_nodes) byte on the edge into the node */
    int32_t *node_tok;   /* (n_nodes) token ending at the node, 0 = none */
    uint32_t n_nodes;
    /* words: ids sorted by their bytes, for binary search */
    int *sorted;         /* (vocab) */
};

/* ---- small helpers ---------------------------------------------------------- */

static void *xcalloc(size_t n, size_t sz) { return calloc(n ? n : 1, sz ? sz : 1); }

static ms_tokenizer *tok_alloc(ms_tok_kind kind, int vocab)
{
    ms_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->vocab = vocab;
    t->off = xcalloc((size_t)vocab, sizeof *t->off);
    t->len = xcalloc((size_t)vocab, sizeof *t->len);
    if (!t->off || !t->len) { ms_tok_free(t); return NULL; }
    return t;
}

void ms_tok_free(ms_tokenizer *t)
{
    if (!t) return;
    free(t->arena); free(t->off); free(t->len);
    free(t->first); free(t->nchild); free(t->label); free(t->node_tok);
    free(t->sorted);
    free(t);
}

ms_tok_kind ms_tok_kind_of(const ms_tokenizer *t) { return t->kind; }
int ms_tok_vocab_size(const ms_tokenizer *t) { return t->vocab; }

int ms_tok_token_bytes(const ms_tokenizer *t, int id, const char **bytes, size_t *len)
{
    if (!t || id < 0 || id >= t->vocab) return -1;
    *bytes = t->arena + t->off[id];
    *len = t->len[id];
    return 0;
}

/* Length of the UTF-8 sequence that starts with lead byte c (0 = invalid lead). */
static int utf8_need(unsigned char c)
{
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Is c valid as byte j (>= 1) of a sequence led by lead?  The narrowed second
 * byte ranges exclude overlongs, surrogates and code points above U+10FFFF. */
static int utf8_cont_ok(unsigned char lead, int j, unsigned char c)
{
    unsigned char lo = 0x80, hi = 0xBF;
    if (j == 1) {
        if (lead == 0xE0) lo = 0xA0;
        else if (lead == 0xED) hi = 0x9F;
        else if (lead == 0xF0) lo = 0x90;
        else if (lead == 0xF4) hi = 0x8F;
    }
    return c >= lo && c <= hi;
}

/* Length of the valid UTF-8 character at s[0..n), or 0 if it is not one. */
static int utf8_valid_at(const unsigned char *s, size_t n)
{
    int need = utf8_need(s[0]);
    if (!need || (size_t)need > n) return 0;
    for (int j = 1; j < need; j++)
        if (!utf8_cont_ok(s[0], j, s[j])) return 0;
    return need;
}

static int utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* ---- bytes ------------------------------------------------------------------ */

ms_tokenizer *ms_tok_bytes_new(void)
{
    ms_tokenizer *t = tok_alloc(MS_TOK_BYTES, 256);
    if (!t) return NULL;
    t->arena = malloc(256);
    if (!t->arena) { ms_tok_free(t); return NULL; }
    for (int i = 0; i < 256; i++) {
        t->arena[i] = (char)i;
        t->off[i] = (uint32_t)i;
        t->len[i] = 1;
    }
    return t;
}

/* ---- rwkv-world: the vocabulary file ---------------------------------------- */

/* Decode the Python literal at s[0..e) into out (which has room: a literal
 * never decodes to more bytes than its source text, \x80 -> 2 bytes from 4
 * source bytes being the worst case).  Returns the number of source bytes
 * consumed (up to and including the closing quote) and sets *outlen, or -1
 * with a reason in why. */
static long parse_literal(const char *s, const char *e, char *out, size_t *outlen,
                          char *why, size_t whysz)
{
    const char *p = s;
    int is_bytes = 0;
    if (p < e && (*p == 'b' || *p == 'B')) { is_bytes = 1; p++; }
    if (p >= e || (*p != '\'' && *p != '"')) {
        snprintf(why, whysz, "expected a quoted str or bytes literal");
        return -1;
    }
    char q = *p++;
    size_t n = 0;
    for (;;) {
        if (p >= e) { snprintf(why, whysz, "unterminated literal (no closing %c)", q); return -1; }
        unsigned char c = (unsigned char)*p;
        if (c == (unsigned char)q) { p++; break; }
        if (c == '\\') {
            if (p + 1 >= e) { snprintf(why, whysz, "backslash at the end of the literal"); return -1; }
            char x = p[1];
            uint32_t cp;
            switch (x) {
            case '\\': cp = '\\'; p += 2; break;
            case '\'': cp = '\''; p += 2; break;
            case '"':  cp = '"';  p += 2; break;
            case 'n':  cp = '\n'; p += 2; break;
            case 'r':  cp = '\r'; p += 2; break;
            case 't':  cp = '\t'; p += 2; break;
            case 'x': {
                int h1 = p + 2 < e ? hexval(p[2]) : -1, h2 = p + 3 < e ? hexval(p[3]) : -1;
                if (h1 < 0 || h2 < 0) { snprintf(why, whysz, "bad escape: \\x needs two hex digits"); return -1; }
                cp = (uint32_t)(h1 << 4 | h2);
                p += 4;
                if (is_bytes) { out[n++] = (char)cp; continue; }  /* raw byte */
                break;                                            /* code point U+00NN */
            }
            case 'u': {
                if (is_bytes) { snprintf(why, whysz, "bad escape: \\u in a bytes literal"); return -1; }
                cp = 0;
                for (int k = 0; k < 4; k++) {
                    int h = p + 2 + k < e ? hexval(p[2 + k]) : -1;
                    if (h < 0) { snprintf(why, whysz, "bad escape: \\u needs four hex digits"); return -1; }
                    cp = cp << 4 | (uint32_t)h;
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) {
                    snprintf(why, whysz, "bad escape: \\u%04X is a surrogate, not encodable in UTF-8", (unsigned)cp);
                    return -1;
                }
                p += 6;
                break;
            }
            default:
                if ((unsigned char)x >= 0x20 && (unsigned char)x < 0x7F)
                    snprintf(why, whysz, "bad escape: \\%c", x);
                else
                    snprintf(why, whysz, "bad escape: \\ followed by byte 0x%02X", (unsigned char)x);
                return -1;
            }
            n += (size_t)utf8_put(cp, out + n);
            continue;
        }
        if (c < 0x20 && c != '\t') {
            snprintf(why, whysz, "raw control byte 0x%02X in literal (write it as an escape)", c);
            return -1;
        }
        if (c == 0x7F) { snprintf(why, whysz, "raw control byte 0x7F in literal (write it as an escape)"); return -1; }
        if (c < 0x80) { out[n++] = (char)c; p++; continue; }
        if (is_bytes) { snprintf(why, whysz, "non-ASCII byte 0x%02X in a bytes literal", c); return -1; }
        int k = utf8_valid_at((const unsigned char *)p, (size_t)(e - p));
        if (!k) { snprintf(why, whysz, "invalid UTF-8 (byte 0x%02X) in str literal", c); return -1; }
        memcpy(out + n, p, (size_t)k);
        n += (size_t)k;
        p += k;
    }
    *outlen = n;
    return (long)(p - s);
}

/* Parse a decimal number in s[0..n) that must be <= maxv; -1 if not all
 * digits, -2 if too large. */
static long parse_uint(const char *s, size_t n, long maxv)
{
    if (n == 0) return -1;
    long v = 0;
    int big = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (!big) { v = v * 10 + (s[i] - '0'); if (v > maxv) big = 1; }
    }
    return big ? -2 : v;
}

/* The trie, laid out breadth first: the children of node p are the nodes
 * first[p] .. first[p] + nchild[p] - 1, in increasing order of label[] (the
 * byte on the edge into them), so a step is one memchr over at most 256
 * contiguous bytes, and a node with all 256 children is indexed directly. */
static uint32_t trie_child(const ms_tokenizer *t, uint32_t node, unsigned char c)
{
    uint32_t n = t->nchild[node], f = t->first[node];
    if (n == 256) return f + c;
    const unsigned char *hit = n ? memchr(t->label + f, c, n) : NULL;
    return hit ? (uint32_t)(hit - t->label) : 0;
}

/* A token for sorting; key is its first 8 bytes big endian, zero padded, so
 * that most comparisons are one integer compare. */
typedef struct { uint64_t key; const unsigned char *s; uint32_t len; int32_t id; } tokref;

static int tokref_cmp(const void *pa, const void *pb)
{
    const tokref *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Build the trie over tokens 1..vocab-1 from their sorted list: node k owns
 * the sorted range [lo[k], hi[k]) of tokens that start with its path, and
 * since nodes are made in breadth-first order, visiting k = 0, 1, 2, ...
 * is the queue.  Sequential memory throughout; line_of is only for the
 * message about two ids with the same bytes. */
static int trie_build(ms_tokenizer *t, size_t total, const int *line_of, const char *name, ms_err *err)
{
    if (total + 1 >= MAX_NODES) {
        ms_seterr(err, "%s: vocabulary too large (%zu bytes of tokens, at most %u)", name, total, MAX_NODES - 2);
        return -1;
    }
    size_t cap = total + 1, nt = 0;   /* a node per distinct prefix, root included */
    tokref *tr = malloc((size_t)t->vocab * sizeof *tr);
    uint32_t *lo = malloc(cap * sizeof *lo), *hi = malloc(cap * sizeof *hi), *depth = malloc(cap * sizeof *depth);
    t->first = malloc(cap * sizeof *t->first);
    t->nchild = malloc(cap * sizeof *t->nchild);
    t->node_tok = malloc(cap * sizeof *t->node_tok);
    t->label = malloc(cap);
    int rc = -1;
    if (!tr || !lo || !hi || !depth || !t->first || !t->nchild || !t->node_tok || !t->label) {
        ms_seterr(err, "%s: out of memory for the trie (%zu nodes)", name, cap);
        goto out;
    }
    for (int id = 1; id < t->vocab; id++) {
        if (!t->len[id]) continue;
        const unsigned char *ts = (const unsigned char *)t->arena + t->off[id];
        uint64_t key = 0;
        for (uint32_t j = 0; j < 8; j++) key = key << 8 | (j < t->len[id] ? ts[j] : 0);
        tr[nt++] = (tokref){ key, ts, t->len[id], id };
    }
    qsort(tr, nt, sizeof *tr, tokref_cmp);

    uint32_t n_nodes = 1;
    lo[0] = 0; hi[0] = (uint32_t)nt; depth[0] = 0; t->label[0] = 0;
    for (uint32_t k = 0; k < n_nodes; k++) {
        uint32_t a = lo[k], b = hi[k], d = depth[k];
        t->node_tok[k] = 0;
        if (a < b && tr[a].len == d) {            /* the path itself is a token */
            if (a + 1 < b && tr[a + 1].len == d) {
                int x = tr[a].id, y = tr[a + 1].id, first = line_of[x] < line_of[y] ? x : y, second = x ^ y ^ first;
                ms_seterr(err, "%s:%d: id %d has the same bytes as id %d (line %d)",
                          name, line_of[second], second, first, line_of[first]);
                goto out;
            }
            t->node_tok[k] = tr[a].id;
            a++;
        }
        t->first[k] = n_nodes;
        t->nchild[k] = 0;
        while (a < b) {                           /* one child per distinct next byte */
            unsigned char c = tr[a].s[d];
            uint32_t e = a + 1;
            while (e < b && tr[e].s[d] == c) e++;
            t->label[n_nodes] = c;
            lo[n_nodes] = a; hi[n_nodes] = e; depth[n_nodes] = d + 1;
            n_nodes++;
            t->nchild[k]++;
            a = e;
        }
    }
    t->n_nodes = n_nodes;
    rc = 0;
out:
    free(tr); free(lo); free(hi); free(depth);
    return rc;
}

ms_tokenizer *ms_tok_world_parse(const char *name, const char *buf, size_t len, ms_err *err)
{
    if (len > 0xFFFFFFF0u) {   /* token offsets are 32-bit */
        ms_seterr(err, "%s: file of %zu bytes is too large for a vocabulary", name, len);
        return NULL;
    }
    ms_tokenizer *t = tok_alloc(MS_TOK_WORLD, WORLD_VOCAB);
    int *line_of = calloc(WORLD_VOCAB, sizeof *line_of);   /* 0 = id not seen */
    if (t) t->arena = malloc(len ? len : 1);
    if (!t || !line_of || !t->arena) {
        ms_seterr(err, "%s: out of memory", name);
        goto fail;
    }
    size_t used = 0;
    int line = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end, *next = nl ? nl + 1 : end;
        line++;
        if (e > p && e[-1] == '\r') e--;
        if (e == p) { p = next; continue; }   /* blank line */

        /* id */
        const char *q = p;
        while (q < e && *q != ' ') q++;
        long id = parse_uint(p, (size_t)(q - p), WORLD_VOCAB - 1);
        if (id == -1) { ms_seterr(err, "%s:%d: id '%.*s' is not a number", name, line, (int)(q - p > 20 ? 20 : q - p), p); goto fail; }
        if (id == -2) { ms_seterr(err, "%s:%d: id %.*s is out of range (1..%d)", name, line, (int)(q - p > 20 ? 20 : q - p), p, WORLD_VOCAB - 1); goto fail; }
        if (id == 0) { ms_seterr(err, "%s:%d: id 0 is reserved for end of text", name, line); goto fail; }
        if (line_of[id]) { ms_seterr(err, "%s:%d: duplicate id %ld (first on line %d)", name, line, id, line_of[id]); goto fail; }
        while (q < e && *q == ' ') q++;
        if (q == e) { ms_seterr(err, "%s:%d: missing literal after the id", name, line); goto fail; }

        /* literal */
        char why[160];
        size_t n;
        long used_src = parse_literal(q, e, t->arena + used, &n, why, sizeof why);
        if (used_src < 0) { ms_seterr(err, "%s:%d: %s", name, line, why); goto fail; }
        q += used_src;
        if (q == e || *q != ' ') {
            if (q == e) ms_seterr(err, "%s:%d: missing byte length after the literal", name, line);
            else ms_seterr(err, "%s:%d: expected a space after the literal, found '%c'", name, line, *q);
            goto fail;
        }
        while (q < e && *q == ' ') q++;
        if (q == e) { ms_seterr(err, "%s:%d: missing byte length after the literal", name, line); goto fail; }

        /* byte length */
        long stated = parse_uint(q, (size_t)(e - q), 1L << 30);
        if (stated == -1) { ms_seterr(err, "%s:%d: byte length '%.*s' is not a number", name, line, (int)(e - q > 20 ? 20 : e - q), q); goto fail; }
        if (stated == -2 || (size_t)stated != n) {
            ms_seterr(err, "%s:%d: literal decodes to %zu bytes, the line says %.*s", name, line, n, (int)(e - q > 20 ? 20 : e - q), q);
            goto fail;
        }
        if (n == 0) { ms_seterr(err, "%s:%d: empty token", name, line); goto fail; }

        t->off[id] = (uint32_t)used;
        t->len[id] = (uint32_t)n;
        line_of[id] = line;
        used += n;
        p = next;
    }
    if (trie_build(t, used, line_of, name, err)) goto fail;
    free(line_of);
    return t;
fail:
    free(line_of);
    ms_tok_free(t);
    return NULL;
}

ms_tokenizer *ms_tok_world_load(const char *path, ms_err *err)
{
    FILE *f = ms_fopen_read(path, "vocabulary", err);
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : (1u << 20);
            char *nb = realloc(buf, ncap);
            if (!nb) { ms_seterr(err, "%s: out of memory reading the file", path); goto fail; }
            buf = nb; cap = ncap;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    if (ferror(f)) { ms_seterr(err, "%s: read error: %s", path, strerror(errno)); goto fail; }
    fclose(f);
    ms_tokenizer *t = ms_tok_world_parse(path, buf, len, err);
    free(buf);
    return t;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* ---- words ------------------------------------------------------------------ */

/* what sort_ids needs to compare two ids */
typedef struct { const char *arena; const uint32_t *off, *len; } words_view;

static int bytes_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c) return c;
    return (na > nb) - (na < nb);
}

/* Sort ids by their bytes: an insertion-merge sort with explicit context,
 * since qsort has no context argument in C11. */
static void sort_ids(int *ids, int *tmp, int n, const words_view *w)
{
    if (n < 2) return;
    int h = n / 2;
    sort_ids(ids, tmp, h, w);
    sort_ids(ids + h, tmp, n - h, w);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int a = ids[i], b = ids[j];
        if (bytes_cmp(w->arena + w->off[b], w->len[b], w->arena + w->off[a], w->len[a]) < 0) tmp[k++] = ids[j++];
        else tmp[k++] = ids[i++];
    }
    while (i < h) tmp[k++] = ids[i++];
    while (j < n) tmp[k++] = ids[j++];
    memcpy(ids, tmp, (size_t)n * sizeof *ids);
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

ms_tokenizer *ms_tok_words_new(const char *const *words, int n, ms_err *err)
{
    if (n < 1 || !words) { ms_seterr(err, "words tokenizer: the vocabulary is empty"); return NULL; }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!words[i]) { ms_seterr(err, "words tokenizer: word %d is missing", i); return NULL; }
        size_t l = strlen(words[i]);
        if (l == 0) { ms_seterr(err, "words tokenizer: word %d is empty", i); return NULL; }
        for (size_t k = 0; k < l; k++)
            if (is_space((unsigned char)words[i][k])) {
                ms_seterr(err, "words tokenizer: word %d '%.40s' contains whitespace", i, words[i]);
                return NULL;
            }
        total += l;
        if (total > 0xFFFFFFF0u) { ms_seterr(err, "words tokenizer: vocabulary too large"); return NULL; }
    }
    ms_tokenizer *t = tok_alloc(MS_TOK_WORDS, n);
    int *tmp = malloc((size_t)n * sizeof *tmp);
    if (t) { t->arena = malloc(total); t->sorted = malloc((size_t)n * sizeof *t->sorted); }
    if (!t || !tmp || !t->arena || !t->sorted) {
        ms_seterr(err, "words tokenizer: out of memory");
        goto fail;
    }
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(words[i]);
        memcpy(t->arena + used, words[i], l);
        t->off[i] = (uint32_t)used;
        t->len[i] = (uint32_t)l;
        t->sorted[i] = i;
        used += l;
    }
    words_view w = { t->arena, t->off, t->len };
    sort_ids(t->sorted, tmp, n, &w);
    for (int i = 1; i < n; i++) {
        int a = t->sorted[i - 1], b = t->sorted[i];
        if (!bytes_cmp(t->arena + t->off[a], t->len[a], t->arena + t->off[b], t->len[b])) {
            ms_seterr(err, "words tokenizer: word '%.40s' appears twice (ids %d and %d)",
                      words[a], a < b ? a : b, a < b ? b : a);
            goto fail;
        }
    }
    free(tmp);
    return t;
fail:
    free(tmp);
    ms_tok_free(t);
    return NULL;
}

static int words_find(const ms_tokenizer *t, const char *s, size_t n)
{
    int lo = 0, hi = t->vocab - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, id = t->sorted[mid];
        int c = bytes_cmp(t->arena + t->off[id], t->len[id], s, n);
        if (!c) return id;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

/* Levenshtein distance over bytes; both sides are cut to 256 bytes, which
 * is plenty for ranking suggestions and keeps it allocation-free. */
#define EDIT_MAX 256
static int edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    int row[EDIT_MAX + 1];
    if (na > EDIT_MAX) na = EDIT_MAX;
    if (nb > EDIT_MAX) nb = EDIT_MAX;
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static void words_unknown(const ms_tokenizer *t, const char *s, size_t n, ms_err *err)
{
    int best[3] = { -1, -1, -1 }, bd[3] = { 0, 0, 0 };
    for (int id = 0; id < t->vocab; id++) {
        int d = edit_distance(s, n, t->arena + t->off[id], t->len[id]);
        for (int k = 0; k < 3; k++) {
            if (best[k] < 0 || d < bd[k]) {   /* ties keep vocabulary order */
                for (int m = 2; m > k; m--) { best[m] = best[m - 1]; bd[m] = bd[m - 1]; }
                best[k] = id; bd[k] = d;
                break;
            }
        }
    }
    char list[400];
    size_t o = 0;
    list[0] = 0;
    for (int k = 0; k < 3 && best[k] >= 0; k++) {
        int id = best[k], l = (int)(t->len[id] > 60 ? 60 : t->len[id]);
        int w = snprintf(list + o, sizeof list - o, "%s'%.*s'", k ? ", " : "", l, t->arena + t->off[id]);
        if (w < 0 || (size_t)w >= sizeof list - o) break;
        o += (size_t)w;
    }
    ms_seterr(err, "unknown word '%.*s'; nearest: %s", (int)(n > 60 ? 60 : n), s, list);
}

/* ---- encode ----------------------------------------------------------------- */

int ms_tok_encode(const ms_tokenizer *t, const char *text, size_t len,
                  int **ids, int *n_ids, ms_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (len > (size_t)0x7FFFFFFF) { ms_seterr(err, "encode: text of %zu bytes is too long", len); return -1; }
    int *out = malloc((len ? len : 1) * sizeof *out);   /* every token is >= 1 byte */
    if (!out) { ms_seterr(err, "encode: out of memory for %zu ids", len); return -1; }
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0;
    switch (t->kind) {
    case MS_TOK_BYTES:
        for (size_t i = 0; i < len; i++) out[n++] = s[i];
        break;
    case MS_TOK_WORLD:
        for (size_t i = 0; i < len;) {
            uint32_t node = 0;
            int best = 0;
            size_t best_len = 0;
            for (size_t j = i; j < len; j++) {
                node = trie_child(t, node, s[j]);
                if (!node) break;
                if (t->node_tok[node]) { best = t->node_tok[node]; best_len = j - i + 1; }
            }
            if (!best) {
                ms_seterr(err, "encode: no token starts with byte 0x%02X (offset %zu)", s[i], i);
                free(out);
                return -1;
            }
            out[n++] = best;
            i += best_len;
        }
        break;
    case MS_TOK_WORDS:
        for (size_t i = 0; i < len;) {
            while (i < len && is_space(s[i])) i++;
            if (i == len) break;
            size_t j = i;
            while (j < len && !is_space(s[j])) j++;
            int id = words_find(t, text + i, j - i);
            if (id < 0) { words_unknown(t, text + i, j - i, err); free(out); return -1; }
            out[n++] = id;
            i = j;
        }
        break;
    }
    *ids = out;
    *n_ids = (int)n;
    return 0;
}

/* ---- streaming decode ------------------------------------------------------- */

/* Output that never cuts a character: once one does not fit, it and every
 * later one are dropped, so what was written is a prefix of the full text. */
typedef struct { char *p; size_t cap, n; int full; } outbuf;

static void out_put(outbuf *o, const void *s, size_t k)
{
    if (o->full || o->cap == 0 || o->n + k + 1 > o->cap) { o->full = 1; return; }
    memcpy(o->p + o->n, s, k);
    o->n += k;
    o->p[o->n] = 0;
}

static void out_fffd(outbuf *o) { out_put(o, "\xEF\xBF\xBD", 3); }

static void buf_drop(ms_utf8buf *b, int k)
{
    memmove(b->buf, b->buf + k, (size_t)(b->n - k));
    b->n -= k;
}

/* Emit every whole character at the front of b; keep an incomplete but still
 * possible one unless final. */
static void utf8_drain(ms_utf8buf *b, outbuf *o, int final)
{
    while (b->n > 0) {
        unsigned char c0 = b->buf[0];
        int need = utf8_need(c0);
        if (!need) { out_fffd(o); buf_drop(b, 1); continue; }
        int have = b->n < need ? b->n : need, bad = 0;
        for (int j = 1; j < have; j++)
            if (!utf8_cont_ok(c0, j, b->buf[j])) { bad = j; break; }
        if (bad) { out_fffd(o); buf_drop(b, bad); continue; }   /* maximal subpart */
        if (b->n < need) {
            if (!final) return;
            out_fffd(o); buf_drop(b, b->n);
            continue;
        }
        out_put(o, b->buf, (size_t)need);
        buf_drop(b, need);
    }
}

size_t ms_tok_decode_stream(const ms_tokenizer *t, ms_utf8buf *b, int id, char *out, size_t cap)
{
    outbuf o = { out, cap, 0, 0 };
    if (cap) out[0] = 0;
    if (!t || id < 0 || id >= t->vocab) return 0;
    const unsigned char *s = (const unsigned char *)t->arena + t->off[id];
    size_t n = t->len[id];
    if (t->kind == MS_TOK_WORDS) {
        out_put(&o, s, n);
        out_put(&o, " ", 1);
        return o.n;
    }
    for (size_t i = 0; i < n; i++) {
        if (b->n < 0 || b->n >= (int)sizeof b->buf) b->n = 0;   /* never trust a corrupt buffer */
        b->buf[b->n++] = s[i];
        utf8_drain(b, &o, 0);
    }
    return o.n;
}

size_t ms_tok_decode_flush(ms_utf8buf *b, char *out, size_t cap)
{
    outbuf o = { out, cap, 0, 0 };
    if (cap) out[0] = 0;
    if (b->n < 0 || b->n > (int)sizeof b->buf) b->n = 0;
    utf8_drain(b, &o, 1);
    return o.n;
}

/* ---- render ----------------------------------------------------------------- */

void ms_tok_render(const ms_tokenizer *t, int id, char *out, size_t cap)
{
    outbuf o = { out, cap, 0, 0 };
    if (cap) out[0] = 0;
    if (!t || id < 0 || id >= t->vocab) { out_put(&o, "<bad id>", 8); return; }
    const unsigned char *s = (const unsigned char *)t->arena + t->off[id];
    size_t n = t->len[id];
    if (t->kind == MS_TOK_WORLD && id == 0) { out_put(&o, "<eot>", 5); return; }
    if (n == 0) { out_put(&o, "<unused>", 8); return; }
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        char esc[8];
        int k;
        if (c == '\n') { out_put(&o, "\\n", 2); i++; continue; }
        if (c == '\t') { out_put(&o, "\\t", 2); i++; continue; }
        if (c == '\r') { out_put(&o, "\\r", 2); i++; continue; }
        if (c == '\\') { out_put(&o, "\\\\", 2); i++; continue; }
        if (c >= 0x20 && c < 0x7F) { out_put(&o, s + i, 1); i++; continue; }
        if (c >= 0x80 && (k = utf8_valid_at(s + i, n - i)) > 0) { out_put(&o, s + i, (size_t)k); i += (size_t)k; continue; }
        snprintf(esc, sizeof esc, "\\x%02x", c);
        out_put(&o, esc, 4);
        i++;
    }
}
