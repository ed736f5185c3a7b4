/* tokenizer.h: the three tokenizers of MODEL.md 6 (bytes, rwkv-world, words).
 *
 * A tokenizer turns bytes into token ids and ids back into bytes.  It is
 * read-only after creation and can be shared.  Nothing here prints or exits:
 * failures return non-zero (or NULL) with a one-line message in ms_err.
 */
#ifndef MS_TOKENIZER_H
#define MS_TOKENIZER_H

#include "ms.h"

typedef struct ms_tokenizer ms_tokenizer;

/* id = byte value, vocab 256 */
ms_tokenizer *ms_tok_bytes_new(void);

/* RWKV World: rwkv_vocab_v20230424.txt format, lines `<id> <python literal>
 * <byte length>` (str or bytes literal; escapes \\ \' \" \n \r \t \xNN
 * \uNNNN; CRLF and a missing final newline accepted).  Id 0 is end of text;
 * the vocab is padded to 65536.  A bad line is refused with the file name,
 * the line number and what was wrong. */
ms_tokenizer *ms_tok_world_load(const char *path, ms_err *err);
/* same, from a buffer in memory (name is used in messages) */
ms_tokenizer *ms_tok_world_parse(const char *name, const char *buf, size_t len, ms_err *err);

/* words: the vocabulary is a list of strings (the model's metadata `vocab`);
 * text splits on ASCII whitespace; an unknown word is an error that lists the
 * nearest known words (edit distance). Strings are copied. */
ms_tokenizer *ms_tok_words_new(const char *const *words, int n, ms_err *err);

void ms_tok_free(ms_tokenizer *t);

ms_tok_kind ms_tok_kind_of(const ms_tokenizer *t);
int ms_tok_vocab_size(const ms_tokenizer *t);   /* 256, 65536, or n words */

/* Encode len bytes of text.  On success *ids is a malloc'd array the caller
 * frees, *n_ids its length, and 0 is returned.  World: greedy longest match
 * over the bytes with a trie. */
int ms_tok_encode(const ms_tokenizer *t, const char *text, size_t len,
                  int **ids, int *n_ids, ms_err *err);

/* The bytes of one token (not NUL-terminated; *len may be 0 for unused
 * ids).  Returns 0, or -1 if id is outside the vocab. For `words` the bytes
 * are the word itself without separator. */
int ms_tok_token_bytes(const ms_tokenizer *t, int id, const char **bytes, size_t *len);

/* Streaming decode: tokens can split a UTF-8 character (World, bytes).  Feed
 * ids one by one; whole characters are appended to out (up to cap bytes, NUL
 * terminated) and incomplete ones held back in the buffer.  Invalid
 * sequences are emitted as U+FFFD once it is clear they cannot complete.
 * For `words`, each word is emitted followed by one space.  Returns the
 * number of bytes written (excluding the NUL). */
typedef struct { unsigned char buf[8]; int n; } ms_utf8buf;
size_t ms_tok_decode_stream(const ms_tokenizer *t, ms_utf8buf *b, int id, char *out, size_t cap);
/* flush what is held back (as U+FFFD for an incomplete sequence) */
size_t ms_tok_decode_flush(ms_utf8buf *b, char *out, size_t cap);

/* A printable rendering of one token for tables: escapes control bytes and
 * invalid UTF-8 as \n, \t, \xNN; writes at most cap bytes with a NUL. */
void ms_tok_render(const ms_tokenizer *t, int id, char *out, size_t cap);

#endif
