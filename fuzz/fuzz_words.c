/* fuzz_words.c: the `words` tokenizer (ms_tok_words_new) on a vocabulary
 * taken from the input, then encode.
 *
 * Input: the first line is the text to encode; every further line is one
 * word (so words with spaces, empty words and duplicates reach the
 * checks).  A NUL ends a word early, as it would in the C strings the
 * loader hands over.  At most 4096 words.  Encoding is checked against
 * the contract (fuzz_tok.h).
 */
#include "fuzz.h"
#include "fuzz_tok.h"

#include <string.h>

#define MAX_WORDS 4096

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    const char **words = malloc(MAX_WORDS * sizeof *words);
    FUZZ_CHECK(buf && words, "out of memory");
    memcpy(buf, data, size);
    buf[size] = 0;
    char *nl = memchr(buf, '\n', size);
    size_t text_len = nl ? (size_t)(nl - buf) : size;
    int n = 0;
    for (char *p = nl ? nl + 1 : NULL; p && n < MAX_WORDS;) {
        char *e = memchr(p, '\n', size - (size_t)(p - buf));
        words[n++] = p;
        if (!e) break;
        *e = 0;
        p = e + 1;
    }
    ms_err err = {{0}};
    ms_tokenizer *t = ms_tok_words_new(words, n, &err);
    if (!t) {
        FUZZ_CHECK(err.msg[0], "refused without a message");
    } else {
        FUZZ_CHECK(ms_tok_kind_of(t) == MS_TOK_WORDS && ms_tok_vocab_size(t) == n, "kind or vocab size");
        for (int i = 0; i < n; i++) {   /* each word encodes to its own id */
            int *ids, k;
            FUZZ_CHECK(!ms_tok_encode(t, words[i], strlen(words[i]), &ids, &k, &err) && k == 1 && ids[0] == i,
                       "word %d does not encode to itself", i);
            free(ids);
            if (i >= 64) break;
        }
        fuzz_tok_exercise(t, buf, text_len, NULL, 0);
        ms_tok_free(t);
    }
    free(words);
    free(buf);
    return 0;
}
