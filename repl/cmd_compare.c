/* cmd_compare.c: diff (two points compared part by part, and the KL of
 * their next-token distributions) and sweep patch (activation patching
 * over a layer's heads, one row per head).  The numbers are compare.c's;
 * nothing here changes the session.
 */
#include "cmd_impl.h"
#include "args.h"
#include "compare.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cc_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

int cmd_diff(cmd_call *c)
{
    const ms_config *g = &c->s->model->cfg;
    tgt t = tgt_make(g, TGT_ALL, -1, -1);
    if (c->argc > 2 && cmd_target(c, c->argv[2], &t) != 0) return -1;
    cmd_point A, B;
    if (cmd_point_get(c, c->argv[0], &A) != 0) return -1;
    if (cmd_point_get(c, c->argv[1], &B) != 0) {
        cmd_point_put(&A);
        return -1;
    }
    int np = tgt_parts(g, &t, NULL, 0);
    tgt *parts = malloc(sizeof *parts * (size_t)np);
    if (!parts) {
        cmd_point_put(&A);
        cmd_point_put(&B);
        return cmd_fail(c, "out of memory");
    }
    tgt_parts(g, &t, parts, np);
    char tn[64];
    tgt_name(&t, tn, sizeof tn);
    out_text(c->o, "diff %s (%s, position %" PRId64 ") and %s (%s, position %" PRId64 ") over %s", A.name, A.kind,
             A.p->position, B.name, B.kind, B.p->position, tn);
    out_text(c->o, "  %-16s %13s %13s %13s %10s", "part", "|A|", "|B|", "|B-A|", "cosine");
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "a", A.name);
    cJSON_AddStringToObject(o, "b", B.name);
    cJSON_AddStringToObject(o, "target", tn);
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    for (int i = 0; i < np; i++) {
        cmp_stats st;
        cmp_target(&parts[i], A.p->state, B.p->state, &st);
        char nm[64], cs[24];
        double cosv = cmp_cos(&st);
        if (isnan(cosv)) snprintf(cs, sizeof cs, "-");
        else snprintf(cs, sizeof cs, "%10.6f", cosv);
        out_text(c->o, "  %-16s %13.6g %13.6g %13.6g %10s", tgt_name(&parts[i], nm, sizeof nm), sqrt(st.sq_a),
                 sqrt(st.sq_b), sqrt(st.sq_d), cs);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "part", nm);
        cc_num(r, "norm_a", sqrt(st.sq_a));
        cc_num(r, "norm_b", sqrt(st.sq_b));
        cc_num(r, "norm_diff", sqrt(st.sq_d));
        cc_num(r, "cos", cosv);
        cJSON_AddItemToArray(rows, r);
    }
    free(parts);
    cmp_stats all;
    cmp_target(&t, A.p->state, B.p->state, &all);
    char where[64] = "-";
    if (all.max_d != 0) cmp_where(g, &t, all.max_at, where, sizeof where);
    out_text(c->o, "  total |B-A| = %.6g; largest |B-A| = %.6g%s%s", sqrt(all.sq_d), all.max_d,
             all.max_d != 0 ? " at " : "", all.max_d != 0 ? where : "");
    cc_num(o, "total_diff", sqrt(all.sq_d));
    cc_num(o, "max_diff", all.max_d);
    if (all.max_d != 0) cJSON_AddStringToObject(o, "max_at", where);
    if (A.p->has_logits && B.p->has_logits) {
        double kl = cmp_kl(A.p->logits, B.p->logits, g->vocab);
        out_text(c->o, "  KL(P_A || P_B) of the next-token distributions = %.9g nats", kl);
        cc_num(o, "kl", kl);
    } else {
        const char *who = !A.p->has_logits && !B.p->has_logits ? "neither has" : !A.p->has_logits ? "A has" : "B has";
        out_text(c->o, "  KL of the next-token distributions: n/a (%s no logits yet)", who);
        cJSON_AddNullToObject(o, "kl");
        char why[64];
        snprintf(why, sizeof why, "%s no logits", who);
        cJSON_AddStringToObject(o, "kl_note", why);
    }
    cmd_point_put(&A);
    cmd_point_put(&B);
    return 0;
}


static double cc_prob(const float *l, int n, int id)
{
    double m = l[ms_argmax(l, n)], s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - m);
    return exp((double)l[id] - m) / s;
}

int cmd_sweep(cmd_call *c)
{
    sess *s = c->s;
    const ms_config *g = &s->model->cfg;
    if (strcmp(c->argv[0], "patch") != 0)
        return cmd_fail(c, "the only sweep is 'sweep patch L.* from SRC [TOKEN]', got '%s'", cmd_q(c->argv[0]));
    tgt t;
    if (cmd_target(c, c->argv[1], &t) != 0) return -1;
    if (t.kind != TGT_LAYER)
        return cmd_fail(c, "sweep patch takes a layer's heads as L.* (L from 0 to %d), got '%s'", g->n_layer - 1,
                        cmd_q(c->argv[1]));
    if (strcmp(c->argv[2], "from") != 0)
        return cmd_fail(c, "expected 'from', got '%s' (usage: sweep patch L.* from SRC [TOKEN])", cmd_q(c->argv[2]));
    long tok = -1;
    if (c->argc > 4 && arg_long(c->argv[4], 0, g->vocab - 1, &tok) != 0)
        return cmd_fail(c, "TOKEN must be a token id from 0 to %d, got '%s'", g->vocab - 1, cmd_q(c->argv[4]));
    if (tok < 0 && !s->cur.has_logits)
        return cmd_fail(c, "no logits yet at position %" PRId64 " to choose the next token: give TOKEN",
                        s->cur.position);
    if (tok < 0) tok = ms_argmax(s->cur.logits, g->vocab);
    cmd_point src;
    if (cmd_point_get(c, c->argv[3], &src) != 0) return -1;
    const size_t SL = ms_state_len(g), V = (size_t)g->vocab;
    float *two = malloc(sizeof(float) * SL * 2), *l0 = malloc(sizeof(float) * V * 2);
    float *bst = NULL, *blg = NULL;
    int *btk = NULL;
    int rc = -1;
    if (!two || !l0) {
        cmd_fail(c, "out of memory");
        goto done;
    }
    /* the unpatched point and the source, each stepped with the token (one batch of two);
     * their logits: l0 and ls */
    float *ls = l0 + V;
    memcpy(two, s->cur.state, SL * sizeof(float));
    memcpy(two + SL, src.p->state, SL * sizeof(float));
    const int tt2[2] = { (int)tok, (int)tok };
    if (sess_model_steps(s, two, 2, tt2, l0, c->err) != 0) goto done;
    int top = ms_argmax(ls, g->vocab);
    double kl_base = cmp_kl(ls, l0, g->vocab), p_base = cc_prob(l0, g->vocab, top);
    char tt[300], ts[300];
    out_text(c->o, "sweep patch L%d.H* from %s, then token %ld %s; SRC's top next token %d %s: p = %.6g unpatched, "
             "%.6g in SRC; KL(P_src||P_now) = %.6g", t.layer, src.name, tok, cmd_tok(c, (int)tok, tt, sizeof tt), top,
             cmd_tok(c, top, ts, sizeof ts), p_base, cc_prob(ls, g->vocab, top), kl_base);
    out_text(c->o, "  %-8s %12s %12s %12s %10s %12s", "head", "|dS|", "kl_cur", "kl_src", "recovered", "p_top");
    cJSON *o = out_obj(c->o);
    cJSON_AddNumberToObject(o, "layer", t.layer);
    cJSON_AddStringToObject(o, "from", src.name);
    cJSON_AddNumberToObject(o, "token", (double)tok);
    cJSON_AddNumberToObject(o, "top", top);
    cc_num(o, "p_top_unpatched", p_base);
    cc_num(o, "kl_src_unpatched", kl_base);
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    /* the patched points, a chunk of heads at a time (one step for the chunk on the GPU) */
    const int per = sess_batch_hint(s, SL);
    bst = malloc(sizeof(float) * SL * (size_t)per);
    blg = malloc(sizeof(float) * V * (size_t)per);
    btk = malloc(sizeof(int) * (size_t)per);
    if (!bst || !blg || !btk) {
        cmd_fail(c, "out of memory for %d patched states", per);
        goto done;
    }
    for (int h = 0; h < g->n_head; h++) {
        if (sess_interrupted(s)) {
            cmd_fail(c, "interrupted after %d of %d heads", h, g->n_head);
            goto done;
        }
        const int j = h % per;
        if (j == 0) {   /* step heads h .. h+nb-1 */
            int nb = g->n_head - h < per ? g->n_head - h : per;
            for (int b = 0; b < nb; b++) {
                tgt hb = tgt_make(g, TGT_HEAD, t.layer, h + b);
                float *q = bst + (size_t)b * SL;
                memcpy(q, s->cur.state, SL * sizeof(float));
                for (size_t k = 0; k < hb.len; k++) q[hb.off + k] = src.p->state[hb.off + k];
                btk[b] = (int)tok;
            }
            if (sess_model_steps(s, bst, nb, btk, blg, c->err) != 0) goto done;
        }
        tgt ht = tgt_make(g, TGT_HEAD, t.layer, h);
        cmp_stats st;
        cmp_target(&ht, s->cur.state, src.p->state, &st);
        const float *pl = blg + (size_t)j * V;
        double kc = cmp_kl(l0, pl, g->vocab), ks = cmp_kl(ls, pl, g->vocab);
        double rec = kl_base > 0 ? 1 - ks / kl_base : NAN, pt = cc_prob(pl, g->vocab, top);
        char rs[24];
        if (isnan(rec)) snprintf(rs, sizeof rs, "-");
        else snprintf(rs, sizeof rs, "%10.4f", rec);
        out_text(c->o, "  L%d.H%-4d %12.6g %12.6g %12.6g %10s %12.6g", t.layer, h, sqrt(st.sq_d), kc, ks, rs, pt);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "head", h);
        cc_num(r, "dS", sqrt(st.sq_d));
        cc_num(r, "kl_cur", kc);
        cc_num(r, "kl_src", ks);
        cc_num(r, "recovered", rec);
        cc_num(r, "p_top", pt);
        cJSON_AddItemToArray(rows, r);
    }
    rc = 0;
done:
    free(two);
    free(l0);
    free(bst);
    free(blg);
    free(btk);
    cmd_point_put(&src);
    return rc;
}
