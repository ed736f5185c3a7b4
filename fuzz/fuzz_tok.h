/* fuzz_tok.h: the checks the tokenizer targets (vocab, words) run on a
 * tokenizer that was accepted: encode a text, and if that succeeds, compare
 * the result with what the contract in tokenizer.h promises, computed here
 * independently (no code shared with core/tokenizer.c):
 *
 *   - every id is in the vocabulary (World: never 0, end of text);
 *   - World and bytes: the ids' bytes, concatenated, are the text, and each
 *     id is the longest token that is a prefix of the rest (greedy);
 *   - words: the ids' words are the text's words, and decode writes each
 *     followed by one space;
 *   - streaming decode (World, bytes) always writes valid UTF-8 with a NUL,
 *     and for a text that is valid UTF-8 writes the text back exactly;
 *   - rendering writes a NUL-terminated string within its buffer.
 */
#ifndef MS_FUZZ_TOK_H
#define MS_FUZZ_TOK_H

#include "fuzz.h"
#include "tokenizer.h"

#include <string.h>

/* Length of the valid UTF-8 character at s (n bytes left), 0 if none
 * (overlongs, surrogates, > U+10FFFF and truncation are invalid). */
static size_t fuzz_utf8_char(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t j = 2; j < need; j++)
        if (s[j] < 0x80 || s[j] > 0xBF) return 0;
    return need;
}

static int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = fuzz_utf8_char(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static int fuzz_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The longest token among cand[0..ncand) that is a prefix of s[0..n), by
 * trying each (brute force, the oracle for the trie); 0 if none. */
static int fuzz_longest_token(const ms_tokenizer *t, const int *cand, int ncand, const unsigned char *s,
                              size_t n, size_t *len_out)
{
    int best = 0;
    size_t best_len = 0;
    for (int c = 0; c < ncand; c++) {
        int id = cand[c];
        const char *b;
        size_t l;
        if (ms_tok_token_bytes(t, id, &b, &l) || l == 0 || l > n || l <= best_len) continue;
        if (!memcmp(b, s, l)) { best = id; best_len = l; }
    }
    *len_out = best_len;
    return best;
}

/* Encode text and check the result (see the top of the file).  cand: the
 * ids of every token (World, bytes), for the brute-force check of greedy
 * longest match (ncand × ids compares); NULL skips that check. */
static void fuzz_tok_exercise(const ms_tokenizer *t, const char *text, size_t len, const int *cand, int ncand)
{
    ms_err err = {{0}};
    int *ids = NULL, n = 0;
    int V = ms_tok_vocab_size(t);
    ms_tok_kind kind = ms_tok_kind_of(t);
    size_t words_out = 0;   /* words: bytes the decode must write */
    if (ms_tok_encode(t, text, len, &ids, &n, &err)) {
        FUZZ_CHECK(err.msg[0] && !ids && n == 0, "encode failed without a message or left ids");
        return;
    }
    FUZZ_CHECK(n >= 0 && (size_t)n <= len, "%d ids for %zu bytes", n, len);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < V && !(kind == MS_TOK_WORLD && ids[i] == 0), "id %d out of range", ids[i]);

    if (kind == MS_TOK_WORDS) {
        /* the ids' words are the text's words, in order */
        size_t i = 0;
        for (int k = 0; k < n; k++) {
            const char *b;
            size_t l;
            FUZZ_CHECK(!ms_tok_token_bytes(t, ids[k], &b, &l), "token_bytes %d", ids[k]);
            while (i < len && fuzz_is_space((unsigned char)text[i])) i++;
            FUZZ_CHECK(i + l <= len && !memcmp(text + i, b, l) && (i + l == len || fuzz_is_space((unsigned char)text[i + l])),
                       "word %d (id %d) is not the text's word at offset %zu", k, ids[k], i);
            i += l;
            words_out += l + 1;
        }
        while (i < len && fuzz_is_space((unsigned char)text[i])) i++;
        FUZZ_CHECK(i == len, "text left after the last word at offset %zu", i);
    } else {
        size_t o = 0;
        for (int k = 0; k < n; k++) {
            const char *b;
            size_t l;
            FUZZ_CHECK(!ms_tok_token_bytes(t, ids[k], &b, &l), "token_bytes %d", ids[k]);
            FUZZ_CHECK(l > 0 && o + l <= len && !memcmp(text + o, b, l), "id %d does not match the text at %zu", ids[k], o);
            if (cand) {
                size_t bl;
                (void)fuzz_longest_token(t, cand, ncand, (const unsigned char *)text + o, len - o, &bl);
                FUZZ_CHECK(bl == l, "at offset %zu id %d has %zu bytes, the longest token %zu", o, ids[k], l, bl);
            }
            o += l;
        }
        FUZZ_CHECK(o == len, "ids cover %zu of %zu bytes", o, len);
    }

    /* streaming decode (see the top of the file); sizes:
     * one call writes at most 3 * (token bytes + 3) and a NUL (words: the
     * word, a space and a NUL), and no token is longer than the text */
    size_t pcap = 3 * (len + 3) + 1, cap = 3 * len + 4 * (size_t)n + 16, dl = 0;
    char *dec = malloc(cap), *piece = malloc(pcap);
    FUZZ_CHECK(dec && piece, "out of memory");
    ms_utf8buf ub = {{0}, 0};
    for (int k = 0; k < n; k++) {
        size_t w = ms_tok_decode_stream(t, &ub, ids[k], piece, pcap);
        FUZZ_CHECK(w < pcap && piece[w] == 0, "decode wrote %zu bytes", w);
        FUZZ_CHECK(dl + w <= cap, "decode output too long");
        memcpy(dec + dl, piece, w);
        dl += w;
    }
    size_t w = ms_tok_decode_flush(&ub, piece, pcap);
    FUZZ_CHECK(w < pcap && dl + w <= cap, "flush wrote %zu bytes", w);
    memcpy(dec + dl, piece, w);
    dl += w;
    if (kind == MS_TOK_WORDS) {   /* words are written as they are, valid UTF-8 or not */
        FUZZ_CHECK(dl == words_out, "words decode wrote %zu bytes, want %zu", dl, words_out);
    } else {
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)dec, dl), "decode output is not valid UTF-8");
        if (fuzz_utf8_valid((const unsigned char *)text, len))
            FUZZ_CHECK(dl == len && !memcmp(dec, text, len), "decode of valid UTF-8 text differs (%zu vs %zu bytes)",
                       dl, len);
    }
    free(dec);
    free(piece);

    /* render into a small buffer: bounded and terminated */
    for (int k = 0; k < n && k < 64; k++) {
        char r[24];
        memset(r, 'X', sizeof r);
        ms_tok_render(t, ids[k], r, 16);
        FUZZ_CHECK(memchr(r, 0, 16) != NULL && r[16] == 'X', "render overran or left no NUL");
    }
    free(ids);
}

#endif
