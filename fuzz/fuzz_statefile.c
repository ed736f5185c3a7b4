/* fuzz_statefile.c: any bytes as a state file (ms_statefile_load) for a
 * fixed small model, with and without MS_SF_FORCE.
 *
 * Invariants (statefile.h): a refused file leaves the caller's state
 * untouched and the info empty, with a message; an accepted one has token
 * ids in the vocabulary, a position >= 0, no logits when forced or
 * imported, and zero att_x/ffn_x when imported.  Every accepted file is
 * saved again (ms_statefile_save, into a private temporary directory) and
 * reloaded: the state and every info field must come back bit for bit.
 *
 * The model is ms_model_random() of the shape below (L2 C16 H2 N8 n20 Hs1,
 * vocab 256), so its weights hash is FUZZ_SF_SEED and the seeds can match
 * it.  Seeds: build with -DFUZZ_STATEFILE_SEEDS (a main() that writes
 * fuzz/corpus/statefile/; fuzz/make_seeds.py does it) so they come from the
 * real writer and follow its format.
 */
#include "fuzz.h"
#include "ms.h"
#include "safetensors.h"
#include "statefile.h"

#include <string.h>
#include <sys/stat.h>

#define FUZZ_SF_SEED 7

static ms_model *sf_model(void)
{
    static ms_model *m;
    if (m) return m;
    ms_config c;
    memset(&c, 0, sizeof c);
    c.n_layer = 2; c.n_embd = 16; c.n_head = 2; c.head_size = 8; c.vocab = 256;
    c.n_ptok = 20; c.sse_heads = 1; c.d_w = 4; c.d_a = 4; c.d_v = 4; c.d_g = 4;
    c.n_experts = 1; c.top_k = 1; c.tokenizer = MS_TOK_BYTES;
    ms_err err;
    m = ms_model_random(&c, MS_F32, FUZZ_SF_SEED, &err);
    FUZZ_CHECK(m != NULL, "random model: %s", err.msg);
    return m;
}

/* a private directory for the round trip's file (ms_statefile_save writes a
 * temporary file beside the target and renames it) */
static char sf_dir[64], sf_file[96];

static void sf_cleanup(void)
{
    unlink(sf_file);
    rmdir(sf_dir);
}

static const char *sf_tmpfile(void)
{
    if (sf_file[0]) return sf_file;
    snprintf(sf_dir, sizeof sf_dir, "/dev/shm/metastate-fuzz-XXXXXX");
    if (!mkdtemp(sf_dir)) {
        snprintf(sf_dir, sizeof sf_dir, "/tmp/metastate-fuzz-XXXXXX");
        FUZZ_CHECK(mkdtemp(sf_dir) != NULL, "cannot make a temporary directory");
    }
    snprintf(sf_file, sizeof sf_file, "%s/rt.safetensors", sf_dir);
    atexit(sf_cleanup);
    return sf_file;
}

static int sf_info_empty(const ms_statefile_info *i)
{
    static const ms_statefile_info zero;
    return !memcmp(i, &zero, sizeof zero);
}

static void sf_roundtrip(const ms_model *m, const float *st, const ms_statefile_info *in)
{
    const ms_config *c = &m->cfg;
    size_t sl = ms_state_len(c);
    ms_statefile_info w = *in;
    if (!w.has_sampler) ms_sampler_init(&w.sampler, 1.0f, 1.0f, 0, 0);   /* as sess_open does */
    ms_err err = {{0}};
    const char *path = sf_tmpfile();
    FUZZ_CHECK(ms_statefile_save(path, m, st, &w, &err) == 0, "save: %s", err.msg);
    float *back = malloc(sl * sizeof *back);
    FUZZ_CHECK(back != NULL, "out of memory");
    ms_statefile_info r;
    FUZZ_CHECK(ms_statefile_load(path, m, back, &r, 0, &err) == 0, "reload of a saved file: %s", err.msg);
    FUZZ_CHECK(!memcmp(back, st, sl * sizeof *back), "state differs after save and reload");
    FUZZ_CHECK(r.n_tokens == w.n_tokens && (!w.n_tokens || !memcmp(r.tokens, w.tokens, sizeof(int) * (size_t)w.n_tokens)),
               "tokens differ after save and reload");
    FUZZ_CHECK(r.position == w.position, "position %lld -> %lld", (long long)w.position, (long long)r.position);
    FUZZ_CHECK(!strcmp(r.branch, w.branch ? w.branch : "main"), "branch differs");
    FUZZ_CHECK(!strcmp(r.edits_json, w.edits_json ? w.edits_json : "[]"), "edits differ");
    FUZZ_CHECK(r.has_sampler && r.sampler.temp == w.sampler.temp && r.sampler.top_p == w.sampler.top_p &&
               r.sampler.top_k == w.sampler.top_k && r.sampler.seed == w.sampler.seed &&
               !memcmp(r.sampler.rng, w.sampler.rng, sizeof r.sampler.rng), "sampler differs");
    FUZZ_CHECK(!r.logits == !w.logits && (!w.logits || !memcmp(r.logits, w.logits, sizeof(float) * (size_t)c->vocab)),
               "logits differ after save and reload");
    FUZZ_CHECK(!r.imported && !r.forced && r.weights_hash == m->weights_hash, "identity after reload");
    ms_statefile_info_free(&r);
    free(back);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    ms_model *m = sf_model();
    const ms_config *c = &m->cfg;
    const char *path = fuzz_memfile(data, size);
    if (!path) return 0;
    size_t sl = ms_state_len(c);
    float *st = malloc(sl * sizeof *st);
    FUZZ_CHECK(st != NULL, "out of memory");
    for (int flags = 0; flags <= MS_SF_FORCE; flags += MS_SF_FORCE) {
        for (size_t i = 0; i < sl; i++) st[i] = -12345.0f;
        ms_statefile_info info;
        ms_err err = {{0}};
        int rc = ms_statefile_load(path, m, st, &info, flags, &err);
        if (rc) {
            FUZZ_CHECK(err.msg[0], "refused without a message");
            FUZZ_CHECK(sf_info_empty(&info), "info not empty after a refusal");
            for (size_t i = 0; i < sl; i++) FUZZ_CHECK(st[i] == -12345.0f, "state written by a refused load");
            ms_statefile_info_free(&info);
            continue;
        }
        FUZZ_CHECK(info.n_tokens >= 0 && (info.n_tokens == 0 || info.tokens), "n_tokens %d", info.n_tokens);
        for (int i = 0; i < info.n_tokens; i++)
            FUZZ_CHECK(info.tokens[i] >= 0 && info.tokens[i] < c->vocab, "token %d = %d", i, info.tokens[i]);
        FUZZ_CHECK(info.position >= 0, "position %lld", (long long)info.position);
        FUZZ_CHECK(!info.forced || (flags & MS_SF_FORCE), "forced without MS_SF_FORCE");
        FUZZ_CHECK(!(info.forced || info.imported) || !info.logits, "logits kept on a forced or imported file");
        if (info.imported) {
            FUZZ_CHECK(!info.n_tokens && !info.position && !info.has_sampler, "import with metadata");
            for (int l = 0; l < c->n_layer; l++)
                for (int j = 0; j < c->n_embd; j++)
                    FUZZ_CHECK(ms_state_att_x(c, st, l)[j] == 0 && ms_state_ffn_x(c, st, l)[j] == 0,
                               "import left att_x/ffn_x non-zero");
        }
        if (flags == 0) sf_roundtrip(m, st, &info);
        ms_statefile_info_free(&info);
    }
    free(st);
    return 0;
}

#ifdef FUZZ_STATEFILE_SEEDS
/* Writes the seeds into the directory argv[1] with the real writer. */
int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: %s DIR\n", argv[0]); return 2; }
    ms_model *m = sf_model();
    const ms_config *c = &m->cfg;
    size_t sl = ms_state_len(c);
    float *st = malloc(sl * sizeof *st), *lg = malloc(sizeof *lg * (size_t)c->vocab);
    ms_ws *ws = ms_ws_new(m);
    ms_err err;
    memset(st, 0, sl * sizeof *st);
    int toks[3] = {72, 105, 33};
    for (int i = 0; i < 3; i++) ms_step(m, ws, st, st, toks[i], lg, NULL, &err);
    ms_statefile_info info;
    memset(&info, 0, sizeof info);
    info.tokens = toks; info.n_tokens = 3; info.position = 3; info.branch = "main";
    info.edits_json = "[{\"op\":\"zero\",\"target\":\"L0.H1\"}]";
    ms_sampler_init(&info.sampler, 0.8f, 0.95f, 40, 1234);
    info.logits = lg;
    char p[4096];
    int rc = 0;
    snprintf(p, sizeof p, "%s/native-logits.safetensors", argv[1]);
    rc |= ms_statefile_save(p, m, st, &info, &err);
    info.logits = NULL; info.n_tokens = 0; info.position = 0; info.edits_json = NULL; info.branch = "b-1";
    snprintf(p, sizeof p, "%s/native-bare.safetensors", argv[1]);
    rc |= ms_statefile_save(p, m, st, &info, &err);
    /* another model's file with the same layout: loads only with MS_SF_FORCE */
    ms_model other = *m;
    other.weights_hash = 99;
    info.logits = lg; info.tokens = toks; info.n_tokens = 3;
    snprintf(p, sizeof p, "%s/native-other-weights.safetensors", argv[1]);
    rc |= ms_statefile_save(p, &other, st, &info, &err);
    /* RWKV-Runner / PEFT time_state imports: BF16 with a leading 1, and F32 */
    const size_t hn = (size_t)c->n_head * c->head_size * c->head_size;
    uint16_t *bf = malloc(hn * 2);
    for (size_t i = 0; i < hn; i++) bf[i] = (uint16_t)(0x3f80 + (i & 0x3f));
    for (int v = 0; v < 2; v++) {
        ms_st_out t[2];
        memset(t, 0, sizeof t);
        for (int l = 0; l < 2; l++) {
            static char names[2][40];
            snprintf(names[l], sizeof names[l], "blocks.%d.att.time_state", l);
            t[l].name = names[l];
            t[l].dtype = v ? "F32" : "BF16";
            t[l].ndim = v ? 3 : 4;
            int64_t *s = t[l].shape;
            if (!v) *s++ = 1;
            s[0] = c->n_head; s[1] = c->head_size; s[2] = c->head_size;
            t[l].data = v ? (const void *)ms_state_S(c, st, l) : (const void *)bf;
            t[l].nbytes = hn * (v ? 4 : 2);
        }
        snprintf(p, sizeof p, "%s/import-%s.safetensors", argv[1], v ? "f32" : "bf16-leading1");
        rc |= ms_st_write(p, t, 2, NULL, 0, &err);
    }
    if (rc) fprintf(stderr, "fuzz_statefile seeds: %s\n", err.msg);
    free(bf); free(st); free(lg); ms_ws_free(ws);
    return rc ? 1 : 0;
}
#endif
