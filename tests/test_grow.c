/* test_grow.c: progressive scaling (MODEL.md 3.3) and save-model in C.
 *
 *   test_grow [MODEL...]   (default: build/golden/{A,B,B16,C,D,E,E2}.safetensors,
 *                           the rwkv.cpp tiny model, models/kjv.safetensors if present)
 *
 * For each model:
 *   - save-model round trip: the saved file loads to the same logits, bit for
 *     bit, over 64 tokens (and the same weights hash for .safetensors models);
 *   - each growth step that the shape allows (tokens, sse, heads): logits over
 *     64 tokens from the zero state before vs after, and with the growth done
 *     half-way (the state converted by ms_grow_state after 32 tokens), within
 *     1e-5; the old part of the state within 1e-5 too; the deterministic new
 *     values exactly as MODEL.md 3.3 / grow.h say (zero V columns, zero Ks
 *     columns, sse_ln 1/0, zero Wo columns and r_k rows, a0 0, v0 1, k_k 0.85,
 *     k_a 1, ln_x ((1+l)/L)^0.7 and 0), the old values unchanged bit for bit,
 *     the random ones inside their bounds (and +/- paired with experts);
 *   - the grown model saved and loaded again: bit-identical logits, same hash;
 *   - a chain tokens -> sse -> heads against the original, and its growth
 *     history in the metadata;
 *   - invalid steps refused with a message.
 * Prints every comparison with its worst difference.
 */
#include "check.h"
#include "grow.h"
#include "ms.h"
#include "kernels.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_TOK 64
#define TOL 1e-5

static char tmpdir[512];

static ms_model *load_or_die(const char *path)
{
    ms_err e;
    ms_model *m = ms_model_load(path, &e);
    if (!m) {
        printf("cannot load %s: %s\n", path, e.msg);
        exit(1);
    }
    return m;
}

static void tokens_for(const ms_model *m, int *tok)
{
    uint64_t st = 12345;
    for (int i = 0; i < T_TOK; i++) tok[i] = (int)(ms_splitmix64_next(&st) % (uint64_t)m->cfg.vocab);
}

/* logits (T_TOK x V) and the final state of running tok from the zero state;
 * if grow_at >= 0, the state after that many tokens is converted to g and g
 * runs the rest */
static void run(const ms_model *m, const ms_model *g, int grow_at, const int *tok, float *lg, float **state_out)
{
    ms_err e;
    const ms_model *cur = m;
    ms_ws *ws = ms_ws_new(m);
    float *st = calloc(ms_state_len(&m->cfg), sizeof(float));
    const int V = m->cfg.vocab;
    for (int i = 0; i < T_TOK; i++) {
        if (i == grow_at) {
            float *s2 = calloc(ms_state_len(&g->cfg), sizeof(float));
            ms_grow_state(&m->cfg, &g->cfg, st, s2);
            free(st);
            st = s2;
            ms_ws_free(ws);
            ws = ms_ws_new(g);
            cur = g;
        }
        if (ms_step(cur, ws, st, st, tok[i], lg + (size_t)i * V, NULL, &e)) {
            printf("step failed: %s\n", e.msg);
            exit(1);
        }
    }
    ms_ws_free(ws);
    if (state_out) *state_out = st;
    else free(st);
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) d = INFINITY;
        if (d > w) w = d;
    }
    return w;
}

/* worst difference between a state of config a and the old part of one of config b */
static double state_diff(const ms_config *a, const ms_config *b, const float *sa, const float *sb)
{
    double w = 0;
    const size_t C = (size_t)a->n_embd, NN = (size_t)a->head_size * a->head_size;
    const size_t S0 = (size_t)a->n_head * NN, S1 = (size_t)b->n_head * NN;
    for (int l = 0; l < a->n_layer; l++) {
        const float *x = sa + (size_t)l * (2 * C + S0), *y = sb + (size_t)l * (2 * C + S1);
        double d1 = maxdiff(x, y, C + S0), d2 = maxdiff(x + C + S0, y + C + S1, C);
        if (d1 > w) w = d1;
        if (d2 > w) w = d2;
    }
    return w;
}

static float mget(const ms_mat *W, int r, int c)   /* element (out r, in c) */
{
    size_t i = W->trans ? (size_t)c * W->out + r : (size_t)r * W->in + c;
    if (W->dt == MS_F32) return ((const float *)W->data)[i];
    uint16_t h = ((const uint16_t *)W->data)[i];
    return W->dt == MS_BF16 ? ms_bf16_to_f32(h) : ms_f16_to_f32(h);
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ---- the deterministic parts of each step ---- */

static void check_tokens_values(const char *name, const ms_model *m, const ms_model *g, int k)
{
    const ms_config *c = &m->cfg;
    const int E = c->n_experts, per = c->n_ptok / E, add = k / E, per2 = per + add, C = c->n_embd;
    const int HsN = c->sse_heads * c->head_size;
    const double bound = 0.5 / sqrt((double)C);
    long bad_old = 0, bad_zero = 0, bad_bound = 0, bad_pair = 0, nonzero = 0, newvals = 0;
    for (int i = 0; i < c->n_layer; i++) {
        const ms_layer *a = &m->layers[i], *b = &g->layers[i];
        for (int blk = 0; blk < E; blk++) {
            for (int r = 0; r < per; r++) {
                int ro = blk * per + r, rn = blk * per2 + r;
                for (int j = 0; j < C; j++) {
                    bad_old += !same_bits(mget(&a->Kz, ro, j), mget(&b->Kz, rn, j));
                    bad_old += !same_bits(mget(&a->V, j, ro), mget(&b->V, j, rn));
                }
                for (int j = 0; j < HsN; j++) bad_old += !same_bits(mget(&a->Ks, ro, j), mget(&b->Ks, rn, j));
            }
            for (int t = 0; t < add; t++) {
                int rn = blk * per2 + per + t;
                for (int j = 0; j < C; j++) {
                    float v = mget(&b->Kz, rn, j);
                    bad_zero += !same_bits(mget(&b->V, j, rn), 0.0f);
                    bad_bound += !(fabs(v) <= bound * (1 + 1e-2));
                    nonzero += v != 0;
                    newvals++;
                    if (E > 1 && (t & 1)) bad_pair += !(v == -mget(&b->Kz, rn - 1, j));
                }
                for (int j = 0; j < HsN; j++) {
                    float v = mget(&b->Ks, rn, j);
                    bad_bound += !(fabs(v) <= bound * (1 + 1e-2));
                    if (E > 1 && (t & 1)) bad_pair += !(v == -mget(&b->Ks, rn - 1, j));
                }
            }
        }
    }
    CHECK(!bad_old && !bad_zero && !bad_bound && !bad_pair && nonzero > newvals / 2,
          "%s: grow tokens %d: old Kz/Ks/V bit-identical (%ld differ), new V columns exactly 0 (%ld not), new "
          "keys in +/-0.5/sqrt(C) (%ld outside, %ld of %ld nonzero)%s", name, k, bad_old, bad_zero, bad_bound,
          nonzero, newvals, E > 1 ? (bad_pair ? ", +/- pairs BROKEN" : ", +/- pairs per expert block exact") : "");
}

static void check_sse_values(const char *name, const ms_model *m, const ms_model *g, int k)
{
    const ms_config *c = &m->cfg;
    const int HsN = c->sse_heads * c->head_size, Hs2N = g->cfg.sse_heads * c->head_size;
    long bad = 0, bad_old = 0;
    for (int i = 0; i < c->n_layer; i++) {
        const ms_layer *a = &m->layers[i], *b = &g->layers[i];
        for (int j = 0; j < Hs2N; j++) {
            if (j < HsN) {
                bad_old += !same_bits(a->sse_ln_w[j], b->sse_ln_w[j]) + !same_bits(a->sse_ln_b[j], b->sse_ln_b[j]);
                for (int r = 0; r < c->n_ptok; r++) bad_old += !same_bits(mget(&a->Ks, r, j), mget(&b->Ks, r, j));
            } else {
                bad += !same_bits(b->sse_ln_w[j], 1.0f) + !same_bits(b->sse_ln_b[j], 0.0f);
                for (int r = 0; r < c->n_ptok; r++) bad += !same_bits(mget(&b->Ks, r, j), 0.0f);
            }
        }
    }
    CHECK(!bad && !bad_old, "%s: grow sse %d: new Ks columns exactly 0, sse_ln weight 1 bias 0 (%ld differ); old "
          "values bit-identical (%ld differ)", name, k, bad, bad_old);
}

static void check_heads_values(const char *name, const ms_model *m, const ms_model *g, int k)
{
    const ms_config *c = &m->cfg;
    const int A = c->dim_att, A2 = g->cfg.dim_att, C = c->n_embd, L = c->n_layer, N = c->head_size;
    const double rb = 0.5 / sqrt((double)C), kb = 0.05 / sqrt((double)C);
    long bad = 0, bad_old = 0, bad_bound = 0, bad_w0 = 0;
    for (int i = 0; i < L; i++) {
        const ms_layer *a = &m->layers[i], *b = &g->layers[i];
        float lnw = (float)pow((1.0 + i) / L, 0.7);
        for (int j = 0; j < A2; j++) {
            if (j < A) {
                bad_old += !same_bits(a->w0[j], b->w0[j]) + !same_bits(a->a0[j], b->a0[j]) +
                           !same_bits(a->k_k[j], b->k_k[j]) + !same_bits(a->k_a[j], b->k_a[j]) +
                           !same_bits(a->lnx_w[j], b->lnx_w[j]) + !same_bits(a->lnx_b[j], b->lnx_b[j]) +
                           !same_bits(a->r_k[j], b->r_k[j]) + (i > 0 && !same_bits(a->v0[j], b->v0[j]));
                for (int x = 0; x < C; x++)
                    bad_old += !same_bits(mget(&a->Wr, j, x), mget(&b->Wr, j, x)) +
                               !same_bits(mget(&a->Wo, x, j), mget(&b->Wo, x, j));
                for (int d = 0; d < c->d_g; d++) bad_old += !same_bits(mget(&a->g2, j, d), mget(&b->g2, j, d));
                continue;
            }
            bad += !same_bits(b->a0[j], 0.0f) + !same_bits(b->k_k[j], 0.85f) + !same_bits(b->k_a[j], 1.0f) +
                   !same_bits(b->lnx_b[j], 0.0f) + !same_bits(b->lnx_w[j], lnw) + !same_bits(b->r_k[j], 0.0f) +
                   (i > 0 && !same_bits(b->v0[j], 1.0f));
            double r01 = (double)i / (L - 1 > 1 ? L - 1 : 1);
            float w0 = (float)(-7 + 5 * pow((double)j / (A2 - 1), 0.85 + pow(r01, 0.5)) + 0.5);
            bad_w0 += !(fabsf(b->w0[j] - w0) <= 1e-6f * fabsf(w0));
            for (int x = 0; x < C; x++) {
                bad += !same_bits(mget(&b->Wo, x, j), 0.0f);
                bad_bound += !(fabs(mget(&b->Wr, j, x)) <= rb * 1.01) + !(fabs(mget(&b->Wv, j, x)) <= rb * 1.01) +
                             !(fabs(mget(&b->Wk, j, x)) <= kb * 1.01);
            }
        }
    }
    CHECK(!bad && !bad_old && !bad_bound && !bad_w0,
          "%s: grow heads %d (H %d -> %d, N %d): new Wo columns, r_k rows, a0, ln_x bias exactly 0, v0 k_a 1, k_k "
          "0.85, ln_x weight ((1+l)/L)^0.7 (%ld differ), w0 by RWKV-7's formula (%ld differ), new Wr/Wk/Wv rows in "
          "bounds (%ld outside); old values bit-identical (%ld differ)", name, k, c->n_head, g->cfg.n_head, N, bad,
          bad_w0, bad_bound, bad_old);
}

/* ---- one model ---- */

/* save g, load it, compare logits bit for bit and the hash.  same_layout =
 * 0 for an rwkv.cpp model: its LoRA matrices are stored (out, in) and the
 * file gets the official (in, out) layout, which the kernels sum in another
 * order, so there the logits agree within 1e-5 and the hash differs. */
static void check_roundtrip(const char *what, const ms_model *g, const int *tok, const float *lg_g, int same_layout)
{
    char path[700];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    ms_err e;
    if (ms_model_save(g, path, &e)) {
        CHECK(0, "%s: save-model failed: %s", what, e.msg);
        return;
    }
    ms_model *r = ms_model_load(path, &e);
    if (!r) {
        CHECK(0, "%s: the saved file does not load: %s", what, e.msg);
        unlink(path);
        return;
    }
    const size_t n = (size_t)T_TOK * g->cfg.vocab;
    float *lg = malloc(n * sizeof(float));
    run(r, NULL, -1, tok, lg, NULL);
    int same = memcmp(lg, lg_g, n * sizeof(float)) == 0;
    double d = maxdiff(lg, lg_g, n);
    struct stat st;
    stat(path, &st);
    if (same_layout)
        CHECK(same && r->weights_hash == g->weights_hash,
              "%s: saved (%lld bytes) and loaded: %zu logits over %d tokens %s (max |d| %.3g), weights hash %s", what,
              (long long)st.st_size, n, T_TOK, same ? "bit-identical" : "DIFFER", d,
              r->weights_hash == g->weights_hash ? "equal" : "DIFFERS");
    else
        CHECK(d <= TOL, "%s: saved (%lld bytes, LoRA transposed to the official layout) and loaded: %zu logits over "
              "%d tokens max |d| %.3g (limit %g; not bit for bit: the kernels sum the other layout in another order)",
              what, (long long)st.st_size, n, T_TOK, d, TOL);
    free(lg);
    ms_model_free(r);
    unlink(path);
}

static int growth_entries(const ms_model *m)
{
    cJSON *meta = cJSON_Parse(m->meta_json), *g = cJSON_GetObjectItemCaseSensitive(meta, "growth");
    cJSON *l = cJSON_IsString(g) ? cJSON_Parse(g->valuestring) : NULL;
    int n = !g ? 0 : cJSON_IsArray(l) ? cJSON_GetArraySize(l) : -1;   /* no history: none yet */
    cJSON_Delete(l);
    cJSON_Delete(meta);
    return n;
}

static void test_model(const char *path)
{
    ms_model *m = load_or_die(path);
    const ms_config *c = &m->cfg;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("-- %s: L%d C%d H%d N%d n%d Hs%d E%d/%d %s\n", name, c->n_layer, c->n_embd, c->n_head, c->head_size,
           c->n_ptok, c->sse_heads, c->n_experts, c->top_k, ms_dtype_name(c->wtype));
    int tok[T_TOK];
    tokens_for(m, tok);
    const size_t n = (size_t)T_TOK * c->vocab;
    float *lg0 = malloc(n * sizeof(float)), *lg1 = malloc(n * sizeof(float)), *lg2 = malloc(n * sizeof(float));
    float *st0, *st1;
    run(m, NULL, -1, tok, lg0, &st0);
    int is_st = strstr(path, ".safetensors") != NULL;
    check_roundtrip(name, m, tok, lg0, is_st);

    ms_err e;
    const ms_grow_op ops[3] = {MS_GROW_TOKENS, MS_GROW_SSE, MS_GROW_HEADS};
    ms_model *chain = m;
    int chain_steps = 0;
    for (int o = 0; o < 3; o++) {
        int k = ops[o] == MS_GROW_TOKENS ? (c->n_experts > 1 ? 2 * c->n_experts : 8) : 1;
        ms_err ce;
        if (ms_grow_check(c, ops[o], k, &ce)) {
            printf("  (skip) grow %s %d: %s\n", ms_grow_op_name(ops[o]), k, ce.msg);
            continue;
        }
        ms_model *g = ms_grow(m, ops[o], k, 1000 + o, &e);
        if (!g) {
            CHECK(0, "%s: grow %s %d failed: %s", name, ms_grow_op_name(ops[o]), k, e.msg);
            continue;
        }
        run(g, NULL, -1, tok, lg1, &st1);
        run(m, g, T_TOK / 2, tok, lg2, NULL);
        double d1 = maxdiff(lg0, lg1, n), d2 = maxdiff(lg0, lg2, n), ds = state_diff(c, &g->cfg, st0, st1);
        CHECK(d1 <= TOL && d2 <= TOL && ds <= TOL,
              "%s: grow %s %d: logits over %d tokens max |d| %.3g from the zero state, %.3g with the growth after "
              "token %d; old state part after %d tokens max |d| %.3g (limit %g)", name, ms_grow_op_name(ops[o]), k,
              T_TOK, d1, d2, T_TOK / 2, T_TOK, ds, TOL);
        if (ops[o] == MS_GROW_TOKENS) check_tokens_values(name, m, g, k);
        if (ops[o] == MS_GROW_SSE) check_sse_values(name, m, g, k);
        if (ops[o] == MS_GROW_HEADS) check_heads_values(name, m, g, k);
        char what[200];
        snprintf(what, sizeof what, "%s grown by %s %d", name, ms_grow_op_name(ops[o]), k);
        check_roundtrip(what, g, tok, lg1, 1);
        free(st1);
        ms_model_free(g);
        /* the chain: the same step on the chain's model */
        ms_model *h = ms_grow_check(&chain->cfg, ops[o], k, &ce) ? NULL : ms_grow(chain, ops[o], k, 2000 + o, &e);
        if (h) {
            if (chain != m) ms_model_free(chain);
            chain = h;
            chain_steps++;
        }
    }
    if (chain != m) {
        run(chain, NULL, -1, tok, lg1, NULL);
        double d = maxdiff(lg0, lg1, n);
        int ne = growth_entries(chain) - growth_entries(m);
        CHECK(d <= TOL && ne == chain_steps,
              "%s: chain of %d steps (n %d -> %d, Hs %d -> %d, H %d -> %d): logits max |d| %.3g (limit %g); growth "
              "history +%d entries", name, chain_steps, c->n_ptok, chain->cfg.n_ptok, c->sse_heads,
              chain->cfg.sse_heads, c->n_head, chain->cfg.n_head, d, TOL, ne);
        ms_model_free(chain);
    }
    /* refusals */
    ms_err r1, r2, r3;
    int bad_tokens = ms_grow_check(c, MS_GROW_TOKENS, c->n_experts > 1 ? c->n_experts : 0, &r1);
    int bad_sse = ms_grow_check(c, MS_GROW_SSE, c->n_head + 1, &r2);
    int bad_heads = ms_grow_check(c, MS_GROW_HEADS, 0, &r3);
    CHECK(bad_tokens && bad_sse && bad_heads && ms_grow(m, MS_GROW_HEADS, 0, 0, &e) == NULL,
          "%s: invalid steps refused:\n        %s\n        %s\n        %s", name, r1.msg, r2.msg, r3.msg);
    free(st0);
    free(lg0);
    free(lg1);
    free(lg2);
    ms_model_free(m);
}

int main(int argc, char **argv)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/ms-test-grow.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        printf("cannot make a temporary directory %s\n", tmpdir);
        return 1;
    }
    /* splitmix64 against its published first output for seed 0 */
    uint64_t st = 0;
    uint64_t v = ms_splitmix64_next(&st);
    CHECK(v == 0xE220A8397B1DCDAFULL, "splitmix64(seed 0) first value %016llx (expected e220a8397b1dcdaf)",
          (unsigned long long)v);
    /* state conversion on a small config */
    ms_config a = {.n_layer = 2, .n_embd = 3, .n_head = 1, .head_size = 2}, b = a;
    b.n_head = 2;
    float sa[2 * (3 + 4 + 3)], sb[2 * (3 + 8 + 3)];
    for (int i = 0; i < (int)(sizeof sa / sizeof sa[0]); i++) sa[i] = (float)(i + 1);
    memset(sb, 0xff, sizeof sb);
    ms_grow_state(&a, &b, sa, sb);
    const float want[28] = {1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0, 0, 0, 0, 18, 19, 20};
    CHECK(!memcmp(sb, want, sizeof want), "ms_grow_state L2 C3 H1 -> H2 N2: att_x, old head, zero new head, ffn_x");

    static const char *defaults[] = {"build/golden/A.safetensors", "build/golden/B.safetensors",
                                     "build/golden/B16.safetensors", "build/golden/C.safetensors",
                                     "build/golden/D.safetensors", "build/golden/E.safetensors",
                                     "build/golden/E2.safetensors", "tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin",
                                     "tests/fixtures/tiny-rwkv-7v0-834K-FP16.bin", "models/kjv.safetensors"};
    int ran = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++, ran++) test_model(argv[i]);
    } else {
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
            if (access(defaults[i], R_OK)) {
                printf("  (skip) %s: not there\n", defaults[i]);
                continue;
            }
            test_model(defaults[i]);
            ran++;
        }
    }
    CHECK(ran > 0, "%d models tested (run through make test, which writes build/golden first)", ran);
    rmdir(tmpdir);
    return check_done("test_grow");
}
