/* fuzz_vocab.c: any bytes as an RWKV World vocabulary file
 * (ms_tok_world_parse), and for every vocabulary it accepts: encode a fixed
 * text and the first bytes of the input itself, checking the results
 * against a brute-force greedy longest match and the decode contract
 * (fuzz_tok.h).
 *
 * Seeds: fuzz/corpus/vocab (lines of rwkv_vocab_v20230424.txt: single
 * bytes, escapes, CJK, CRLF), dictionary fuzz/vocab.dict.
 */
#include "fuzz.h"
#include "fuzz_tok.h"

#include <string.h>

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    ms_err err = {{0}};
    ms_tokenizer *t = ms_tok_world_parse("fuzz.txt", (const char *)data, size, &err);
    if (!t) {
        FUZZ_CHECK(err.msg[0], "refused without a message");
        return 0;
    }
    FUZZ_CHECK(ms_tok_kind_of(t) == MS_TOK_WORLD && ms_tok_vocab_size(t) == 65536, "kind or vocab size");
    const char *b;
    size_t l;
    FUZZ_CHECK(ms_tok_token_bytes(t, -1, &b, &l) && ms_tok_token_bytes(t, 65536, &b, &l), "bad id accepted");
    FUZZ_CHECK(!ms_tok_token_bytes(t, 0, &b, &l) && l == 0, "id 0 has bytes");
    /* the tokens the file defined, for the greedy oracle */
    int *cand = malloc(65536 * sizeof *cand), nc = 0;
    FUZZ_CHECK(cand != NULL, "out of memory");
    for (int id = 1; id < 65536; id++)
        if (!ms_tok_token_bytes(t, id, &b, &l) && l > 0) cand[nc++] = id;
    static const char fixed[] = "Hello, world!\n\t\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80\xC3\xA9\xFF";
    fuzz_tok_exercise(t, fixed, sizeof fixed - 1, cand, nc);
    fuzz_tok_exercise(t, (const char *)data, size < 256 ? size : 256, cand, nc);
    free(cand);
    ms_tok_free(t);
    return 0;
}
