/* test_tokenizer.c: checks core/tokenizer.c against MODEL.md 6.
 *
 * What it checks: the four World vectors of the spec exactly; encode then
 * concatenate the token bytes gives back the input on seeded random byte
 * strings and random valid UTF-8; the streaming decoder matches a one-shot
 * reference (invalid UTF-8 -> U+FFFD, maximal subparts) whatever the token
 * boundaries; every single-token string encodes to that one token and decodes
 * to itself; CRLF and missing-final-newline files parse; malformed lines are
 * refused with a message naming the line; the bytes and words tokenizers.
 * It prints each check with its count and mismatches, and exits non-zero if
 * any failed.
 *
 * Usage: test_tokenizer [path/to/rwkv_vocab_v20230424.txt]
 */
#include "tokenizer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int n_pass, n_fail;

static void check(int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    printf("%s %-44s ", ok ? "ok  " : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (ok) n_pass++; else n_fail++;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static uint32_t rnd(void)   /* xorshift64*, seeded: the same strings every run */
{
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

/* ---- reference UTF-8 sanitizer (one shot, Unicode Table 3-7) ---------------- */

/* Writes the text with every ill-formed part replaced by U+FFFD, as Python's
 * bytes.decode("utf-8", "replace") does.  out needs 3*n+1 bytes. */
static size_t ref_sanitize(const unsigned char *s, size_t n, char *out)
{
    static const struct { unsigned char lo, hi, len, lo2, hi2; } tab[] = {
        { 0x00, 0x7F, 1, 0, 0 },       { 0xC2, 0xDF, 2, 0x80, 0xBF },
        { 0xE0, 0xE0, 3, 0xA0, 0xBF }, { 0xE1, 0xEC, 3, 0x80, 0xBF },
        { 0xED, 0xED, 3, 0x80, 0x9F }, { 0xEE, 0xEF, 3, 0x80, 0xBF },
        { 0xF0, 0xF0, 4, 0x90, 0xBF }, { 0xF1, 0xF3, 4, 0x80, 0xBF },
        { 0xF4, 0xF4, 4, 0x80, 0x8F },
    };
    size_t o = 0, i = 0;
    while (i < n) {
        int row = -1;
        for (int r = 0; r < 9; r++)
            if (s[i] >= tab[r].lo && s[i] <= tab[r].hi) row = r;
        if (row < 0) { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i++; continue; }
        size_t len = tab[row].len, ok = 1;
        while (ok < len && i + ok < n) {
            unsigned char lo = ok == 1 ? tab[row].lo2 : 0x80, hi = ok == 1 ? tab[row].hi2 : 0xBF;
            if (s[i + ok] < lo || s[i + ok] > hi) break;
            ok++;
        }
        if (ok == len) { memcpy(out + o, s + i, len); o += len; i += len; }
        else { memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i += ok; }
    }
    out[o] = 0;
    return o;
}

/* ---- helpers ---------------------------------------------------------------- */

static int encode_eq(const ms_tokenizer *t, const char *text, size_t len, const int *want, int nwant, char *got_s, size_t gsz)
{
    int *ids, n;
    ms_err e = { "" };
    got_s[0] = 0;
    if (ms_tok_encode(t, text, len, &ids, &n, &e)) { snprintf(got_s, gsz, "error: %s", e.msg); return 0; }
    size_t o = 0;
    for (int i = 0; i < n && o < gsz; i++) o += (size_t)snprintf(got_s + o, gsz - o, "%s%d", i ? " " : "", ids[i]);
    int ok = n == nwant && !memcmp(ids, want, (size_t)n * sizeof *ids);
    free(ids);
    return ok;
}

/* concatenated token bytes of ids; returns the length, or (size_t)-1 */
static size_t concat_bytes(const ms_tokenizer *t, const int *ids, int n, char *out, size_t cap)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        const char *b; size_t l;
        if (ms_tok_token_bytes(t, ids[i], &b, &l) || o + l > cap) return (size_t)-1;
        memcpy(out + o, b, l);
        o += l;
    }
    return o;
}

/* streaming decode of ids into out (a big buffer), with flush */
static size_t stream_decode(const ms_tokenizer *t, const int *ids, int n, char *out, size_t cap)
{
    ms_utf8buf b = { { 0 }, 0 };
    size_t o = 0;
    for (int i = 0; i < n; i++) o += ms_tok_decode_stream(t, &b, ids[i], out + o, cap - o);
    o += ms_tok_decode_flush(&b, out + o, cap - o);
    return o;
}

/* random valid UTF-8 of up to maxlen bytes, characters of all four lengths */
static size_t rand_utf8(char *out, size_t maxlen)
{
    size_t n = 0, target = rnd() % (maxlen + 1);
    while (n < target) {
        uint32_t cp;
        switch (rnd() % 4) {
        case 0: cp = rnd() % 0x80; break;
        case 1: cp = 0x80 + rnd() % (0x800 - 0x80); break;
        case 2: do cp = 0x800 + rnd() % (0x10000 - 0x800); while (cp >= 0xD800 && cp <= 0xDFFF); break;
        default: cp = 0x10000 + rnd() % (0x110000 - 0x10000); break;
        }
        int k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (n + (size_t)k > target) { cp = rnd() % 0x80; k = 1; }
        unsigned char *o = (unsigned char *)out + n;
        if (k == 1) o[0] = (unsigned char)cp;
        else {
            for (int j = k - 1; j > 0; j--) { o[j] = (unsigned char)(0x80 | (cp & 63)); cp >>= 6; }
            o[0] = (unsigned char)((k == 2 ? 0xC0 : k == 3 ? 0xE0 : 0xF0) | cp);
        }
        n += (size_t)k;
    }
    return n;
}

/* ---- the checks --------------------------------------------------------------- */

static void world_vectors(const ms_tokenizer *t)
{
    static const struct { const char *name, *text; int ids[12], n; } v[] = {
        { "world vector \"Hello world\"", "Hello world", { 33155, 40213 }, 2 },
        { "world vector \"User: \\u4f60\\u597d\\n\\nAssistant:\"", "User: \xE4\xBD\xA0\xE5\xA5\xBD\n\nAssistant:",
          { 24281, 59, 33, 10464, 11685, 261, 5585, 41693, 59 }, 9 },
        { "world vector \"  \\t\\n\\n\\n\"", "  \t\n\n\n", { 267, 258, 261 }, 3 },
        { "world vector \"\\U0001F600\\u00e9\"", "\xF0\x9F\x98\x80\xC3\xA9", { 3319, 153, 129, 2503 }, 4 },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char got[256];
        int ok = encode_eq(t, v[i].text, strlen(v[i].text), v[i].ids, v[i].n, got, sizeof got);
        char dec[256];
        size_t dl = stream_decode(t, v[i].ids, v[i].n, dec, sizeof dec);
        int dok = dl == strlen(v[i].text) && !memcmp(dec, v[i].text, dl);
        check(ok && dok, v[i].name, "got [%s], decode %s", got, dok ? "matches" : "DIFFERS");
    }
}

static void world_random(const ms_tokenizer *t)
{
    enum { N = 2000, MAXLEN = 64 };
    char text[MAXLEN + 8], back[MAXLEN * 4 + 8], ref[MAXLEN * 3 + 8], dec[MAXLEN * 4 + 8];
    for (int kind = 0; kind < 2; kind++) {
        int bad_rt = 0, bad_dec = 0, errors = 0;
        long total_bytes = 0, total_ids = 0;
        for (int k = 0; k < N; k++) {
            size_t len;
            if (kind == 0) {
                len = rnd() % (MAXLEN + 1);
                for (size_t i = 0; i < len; i++) text[i] = (char)(rnd() & 0xFF);
            } else {
                len = rand_utf8(text, MAXLEN);
            }
            int *ids, n;
            ms_err e = { "" };
            if (ms_tok_encode(t, text, len, &ids, &n, &e)) { errors++; continue; }
            size_t bl = concat_bytes(t, ids, n, back, sizeof back);
            if (bl != len || memcmp(back, text, len)) bad_rt++;
            size_t rl = ref_sanitize((const unsigned char *)text, len, ref);
            size_t dl = stream_decode(t, ids, n, dec, sizeof dec);
            if (dl != rl || memcmp(dec, ref, rl)) bad_dec++;
            if (kind == 1 && (rl != len || memcmp(ref, text, len))) bad_dec++;   /* generator sanity */
            total_bytes += (long)len;
            total_ids += n;
            free(ids);
        }
        check(!bad_rt && !errors, kind ? "world round trip, random UTF-8" : "world round trip, random bytes",
              "%d strings, %ld bytes, %ld ids: %d mismatches, %d errors", N, total_bytes, total_ids, bad_rt, errors);
        check(!bad_dec, kind ? "world stream decode = input (UTF-8)" : "world stream decode = reference (bytes)",
              "%d strings: %d mismatches", N, bad_dec);
    }
}

static void world_single_tokens(const ms_tokenizer *t)
{
    int n_tok = 0, bad_enc = 0, bad_dec = 0, first_bad = -1, n_invalid = 0;
    for (int id = 1; id < ms_tok_vocab_size(t); id++) {
        const char *b; size_t l;
        if (ms_tok_token_bytes(t, id, &b, &l) || l == 0) continue;
        n_tok++;
        int *ids, n;
        ms_err e = { "" };
        if (ms_tok_encode(t, b, l, &ids, &n, &e) || n != 1 || ids[0] != id) { bad_enc++; if (first_bad < 0) first_bad = id; }
        free(ids);   /* NULL after a failed encode */
        char ref[3 * 128 + 8], dec[3 * 128 + 8];
        size_t rl = ref_sanitize((const unsigned char *)b, l, ref);
        if (rl != l || memcmp(ref, b, l)) n_invalid++;
        size_t dl = stream_decode(t, &id, 1, dec, sizeof dec);
        if (dl != rl || memcmp(dec, ref, rl)) { bad_dec++; if (first_bad < 0) first_bad = id; }
    }
    check(n_tok == 65529 && !bad_enc, "world every token encodes to itself", "%d tokens: %d mismatches (first bad id %d)", n_tok, bad_enc, first_bad);
    check(!bad_dec, "world every token decodes to itself", "%d tokens (%d not valid UTF-8 alone, -> U+FFFD): %d mismatches", n_tok, n_invalid, bad_dec);
}

static void world_speed(const ms_tokenizer *t)
{
    size_t len = 4u << 20;
    char *text = malloc(len);
    if (!text) { check(0, "world encode speed", "out of memory"); return; }
    for (size_t i = 0; i < len;) {   /* English-ish words and some UTF-8 */
        static const char *w[] = { "the ", "model ", "state ", "debugger ", "\xE4\xBD\xA0\xE5\xA5\xBD", "\n", "RWKV-7 ", "42 " };
        const char *s = w[rnd() % 8];
        size_t l = strlen(s);
        if (i + l > len) l = len - i;
        memcpy(text + i, s, l);
        i += l;
    }
    int *ids, n;
    ms_err e = { "" };
    double t0 = now_ms();
    int rc = ms_tok_encode(t, text, len, &ids, &n, &e);
    double dt = now_ms() - t0;
    check(!rc, "world encode speed", "%zu bytes -> %d ids in %.1f ms (%.0f MB/s)", len, rc ? 0 : n, dt, (double)len / 1e3 / (dt > 0 ? dt : 1e-3));
    if (!rc) free(ids);
    free(text);
}

static void world_small_files(void)
{
    /* "a" "b" "ab" "\u00e9" (2 bytes) b"\xff" "x y" */
    const char *lf = "1 'a' 1\n2 \"b\" 1\n3 'ab' 2\n4 '\\u00e9' 2\n5 b'\\xff' 1\n6 'x y' 3\n7 '\\x80' 2\n8 '\\'\\\\\"' 3";
    char crlf[512];
    size_t o = 0;
    for (const char *p = lf; *p; p++) {
        if (*p == '\n') crlf[o++] = '\r';
        crlf[o++] = *p;
    }
    crlf[o] = 0;
    const char *bufs[2] = { lf, crlf };
    const char *names[2] = { "world small vocab, LF, no final newline", "world small vocab, CRLF, no final newline" };
    for (int k = 0; k < 2; k++) {
        for (int final_nl = 0; final_nl < 2; final_nl++) {
            char buf[600];
            snprintf(buf, sizeof buf, "%s%s", bufs[k], final_nl ? (k ? "\r\n" : "\n") : "");
            ms_err e = { "" };
            ms_tokenizer *t = ms_tok_world_parse("small.txt", buf, strlen(buf), &e);
            char got[128] = "";
            int ok = t != NULL;
            if (t) {
                static const int want[] = { 3, 3, 2, 4, 5, 6, 7, 8 };   /* ab ab b é ff "x y" U+0080 '\" */
                const char *text = "ababb\xC3\xA9\xFFx y\xC2\x80'\\\"";
                ok = encode_eq(t, text, strlen(text), want, 8, got, sizeof got);
                const char *b; size_t l;
                ok = ok && !ms_tok_token_bytes(t, 8, &b, &l) && l == 3 && !memcmp(b, "'\\\"", 3);
                ok = ok && ms_tok_vocab_size(t) == 65536 && ms_tok_kind_of(t) == MS_TOK_WORLD;
                ok = ok && !ms_tok_token_bytes(t, 9, &b, &l) && l == 0 && ms_tok_token_bytes(t, 65536, &b, &l) == -1;
                ms_tok_free(t);
            }
            char name[96];
            snprintf(name, sizeof name, "%s", names[k]);
            if (final_nl) { char *p = strstr(name, ", no final newline"); if (p) strcpy(p, ", final newline"); }
            check(ok, name, t ? "encode [%s]" : "refused: %s", t ? got : e.msg);
        }
    }
    /* an unknown byte in a vocab without all 256 single bytes is an error, not a crash */
    ms_err e = { "" };
    ms_tokenizer *t = ms_tok_world_parse("small.txt", lf, strlen(lf), &e);
    int *ids, n;
    int rc = t ? ms_tok_encode(t, "abz", 3, &ids, &n, &e) : 0;
    check(t && rc && strstr(e.msg, "0x7A"), "world byte without a token is an error", "\"%s\"", e.msg);
    ms_tok_free(t);
}

static void world_malformed(void)
{
    static const struct { const char *what, *line3, *expect; } cases[] = {
        { "bad literal (no quote)",      "3 abc 3",            "quoted" },
        { "bad literal (unterminated)",  "3 'abc 3",           "unterminated" },
        { "bad escape \\q",              "3 'a\\qc' 3",        "bad escape" },
        { "bad escape \\x4",             "3 '\\x4' 1",         "bad escape" },
        { "bad escape \\u in bytes",     "3 b'\\u0041' 1",     "bad escape" },
        { "surrogate \\ud800",           "3 '\\ud800' 3",      "surrogate" },
        { "wrong length",                "3 'abc' 4",          "decodes to 3 bytes" },
        { "wrong length (\\x80 in str)", "3 '\\x80' 1",        "decodes to 2 bytes" },
        { "length not a number",         "3 'abc' 3x",         "not a number" },
        { "missing length",              "3 'abc'",            "missing byte length" },
        { "non-numeric id",              "x3 'abc' 3",         "not a number" },
        { "duplicate id",                "1 'abc' 3",          "duplicate id 1" },
        { "id >= 65536",                 "65536 'abc' 3",      "out of range" },
        { "id 0",                        "0 'abc' 3",          "reserved" },
        { "non-ASCII in bytes literal",  "3 b'\xC3\xA9' 2",    "bytes literal" },
        { "invalid UTF-8 in str",        "3 '\xFF' 1",         "invalid UTF-8" },
        { "same bytes as another id",    "3 'a' 1",            "same bytes" },
        { "empty token",                 "3 '' 0",             "empty" },
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    int good = 0;
    for (int i = 0; i < n; i++) {
        for (int crlf = 0; crlf < 2; crlf++) {
            char buf[256];
            const char *nl = crlf ? "\r\n" : "\n";
            snprintf(buf, sizeof buf, "1 'a' 1%s2 'b' 1%s%s%s4 'c' 1%s", nl, nl, cases[i].line3, nl, nl);
            ms_err e = { "" };
            ms_tokenizer *t = ms_tok_world_parse("bad.txt", buf, strlen(buf), &e);
            int ok = !t && !strncmp(e.msg, "bad.txt:3: ", 11) && strstr(e.msg, cases[i].expect);
            if (!crlf || !ok) {
                char name[80];
                snprintf(name, sizeof name, "world refuses %s%s", cases[i].what, crlf ? " (CRLF)" : "");
                check(ok, name, "\"%s\"", t ? "(accepted)" : e.msg);
            }
            good += ok;
            ms_tok_free(t);
        }
    }
    ms_err e = { "" };
    ms_tokenizer *t = ms_tok_world_load("/nonexistent/vocab.txt", &e);
    check(!t && strstr(e.msg, "/nonexistent/vocab.txt"), "world missing file names the path", "\"%s\"", e.msg);
    ms_tok_free(t);
}

static void stream_edge_cases(const ms_tokenizer *bytes)
{
    /* split characters held back, invalid bytes replaced, small cap never cuts */
    int bad = 0;
    ms_utf8buf b = { { 0 }, 0 };
    char out[16];
    int ids[] = { 0xE4, 0xBD, 0xA0 };
    size_t n1 = ms_tok_decode_stream(bytes, &b, ids[0], out, sizeof out);
    size_t n2 = ms_tok_decode_stream(bytes, &b, ids[1], out, sizeof out);
    size_t n3 = ms_tok_decode_stream(bytes, &b, ids[2], out, sizeof out);
    if (n1 || n2 || n3 != 3 || memcmp(out, "\xE4\xBD\xA0", 4)) bad++;
    /* E4 then 'A': the held byte becomes U+FFFD, then 'A' */
    ms_tok_decode_stream(bytes, &b, 0xE4, out, sizeof out);
    n1 = ms_tok_decode_stream(bytes, &b, 'A', out, sizeof out);
    if (n1 != 4 || memcmp(out, "\xEF\xBF\xBD" "A", 5)) bad++;
    /* an incomplete tail is flushed as one U+FFFD */
    ms_tok_decode_stream(bytes, &b, 0xF0, out, sizeof out);
    ms_tok_decode_stream(bytes, &b, 0x9F, out, sizeof out);
    n1 = ms_tok_decode_flush(&b, out, sizeof out);
    if (n1 != 3 || memcmp(out, "\xEF\xBF\xBD", 4) || b.n) bad++;
    /* cap 3: a 3-byte character does not fit with its NUL and is dropped whole */
    ms_tok_decode_stream(bytes, &b, 0xE4, out, sizeof out);
    ms_tok_decode_stream(bytes, &b, 0xBD, out, sizeof out);
    n1 = ms_tok_decode_stream(bytes, &b, 0xA0, out, 3);
    if (n1 != 0 || out[0]) bad++;
    /* render escapes */
    ms_tok_render(bytes, '\n', out, sizeof out);
    if (strcmp(out, "\\n")) bad++;
    ms_tok_render(bytes, 0xFF, out, sizeof out);
    if (strcmp(out, "\\xff")) bad++;
    ms_tok_render(bytes, 'q', out, 2);
    if (strcmp(out, "q")) bad++;
    ms_tok_render(bytes, 0xFF, out, 4);   /* "\xff" does not fit in 3 + NUL */
    if (strcmp(out, "")) bad++;
    check(!bad, "stream decode and render edge cases", "8 cases: %d mismatches", bad);
}

static void bytes_tokenizer(void)
{
    ms_tokenizer *t = ms_tok_bytes_new();
    if (!t) { check(0, "bytes tokenizer", "could not create"); return; }
    int bad = 0;
    char text[300], back[300], ref[900], dec[900];
    for (int k = 0; k < 500; k++) {
        size_t len = rnd() % 257;
        for (size_t i = 0; i < len; i++) text[i] = (char)(rnd() & 0xFF);
        int *ids, n;
        ms_err e = { "" };
        if (ms_tok_encode(t, text, len, &ids, &n, &e)) { bad++; continue; }
        if ((size_t)n != len) bad++;
        for (int i = 0; i < n; i++) if (ids[i] != (unsigned char)text[i]) { bad++; break; }
        size_t bl = concat_bytes(t, ids, n, back, sizeof back);
        if (bl != len || memcmp(back, text, len)) bad++;
        size_t rl = ref_sanitize((const unsigned char *)text, len, ref);
        size_t dl = stream_decode(t, ids, n, dec, sizeof dec);
        if (dl != rl || memcmp(dec, ref, rl)) bad++;
        free(ids);
    }
    check(!bad && ms_tok_vocab_size(t) == 256 && ms_tok_kind_of(t) == MS_TOK_BYTES,
          "bytes round trip and stream decode", "500 strings: %d mismatches", bad);
    stream_edge_cases(t);
    ms_tok_free(t);
}

static void words_tokenizer(void)
{
    const char *vocab[] = { "fo", "food", "bar", "zebra", "0", "1", "213", "21345" };
    ms_err e = { "" };
    ms_tokenizer *t = ms_tok_words_new(vocab, 8, &e);
    if (!t) { check(0, "words tokenizer", "refused: %s", e.msg); return; }
    static const int want[] = { 5, 4, 6, 7, 1, 5 };
    char got[128];
    const char *text = "  1 0\t213\n21345  food 1 ";
    int ok = encode_eq(t, text, strlen(text), want, 6, got, sizeof got);
    char dec[128];
    size_t dl = stream_decode(t, want, 6, dec, sizeof dec);
    ok = ok && dl == strlen("1 0 213 21345 food 1 ") && !strcmp(dec, "1 0 213 21345 food 1 ");
    check(ok && ms_tok_vocab_size(t) == 8 && ms_tok_kind_of(t) == MS_TOK_WORDS, "words encode and decode", "[%s] -> \"%s\"", got, dec);

    int *ids, n;
    int rc = ms_tok_encode(t, "1 foo 0", 7, &ids, &n, &e);
    check(rc && !strcmp(e.msg, "unknown word 'foo'; nearest: 'fo', 'food', 'bar'"),
          "words unknown word lists nearest", "\"%s\"", e.msg);
    rc = ms_tok_encode(t, "", 0, &ids, &n, &e);
    check(!rc && n == 0, "words empty text", "%d ids", n);
    if (!rc) free(ids);
    ms_tok_free(t);

    const char *dup[] = { "a", "b", "a" };
    t = ms_tok_words_new(dup, 3, &e);
    check(!t && strstr(e.msg, "twice"), "words duplicate refused", "\"%s\"", e.msg);
    ms_tok_free(t);
    const char *sp[] = { "a", "b c" };
    t = ms_tok_words_new(sp, 2, &e);
    check(!t && strstr(e.msg, "whitespace"), "words with whitespace refused", "\"%s\"", e.msg);
    ms_tok_free(t);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "models/vocab/rwkv_vocab_v20230424.txt";
    ms_err e = { "" };
    double t0 = now_ms();
    ms_tokenizer *t = ms_tok_world_load(path, &e);
    double dt = now_ms() - t0;
    check(t != NULL && dt < 2000, "world load full vocabulary", t ? "%s in %.1f ms" : "%s", t ? path : e.msg, dt);
    if (t) {
        world_vectors(t);
        world_random(t);
        world_single_tokens(t);
        world_speed(t);
        ms_tok_free(t);
    }
    world_small_files();
    world_malformed();
    bytes_tokenizer();
    words_tokenizer();
    printf("test_tokenizer: %d checks ok, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
