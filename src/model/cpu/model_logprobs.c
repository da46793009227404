/* The fused head on the CPU: per-token log-probability of the target and
 * the next-token entropy without keeping the vocabulary's softmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu/model_layer.h"

/* Rows of logits alive at once: 32 x 151,936 floats is 19 MB. */
enum { LOGPROB_CHUNK = 32 };

/* The rows that have a target, so prompt tokens cost no vocabulary work. */
static int64_t gather_rows(const int32_t *targets, int64_t T, int64_t *rows)
{
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++)
        if (targets[t] >= 0)
            rows[n++] = t;
    return n;
}

/* Logits of rows[0..n) into z[n, vocab]; h rows are copied contiguous for
 * one sgemm. */
static void chunk_logits(const model *m, const model_acts *acts, const int64_t *rows, int64_t n,
                         float *hc, float *z)
{
    const int64_t hd = m->config.hidden_size;
    for (int64_t r = 0; r < n; r++)
        memcpy(hc + r * hd, acts->h + rows[r] * hd, (size_t)hd * sizeof *hc);
    ops_linear(n, hd, m->config.vocab_size, hc, m->weights.lm_head, z);
}

/* log-sum-exp and mean logit E_p[z] of one row, in double. */
static void row_stats(const float *z, int64_t V, double *lse, double *mean)
{
    float mx = -INFINITY;
    for (int64_t j = 0; j < V; j++)
        if (z[j] > mx)
            mx = z[j];
    double sum = 0, weighted = 0;
    for (int64_t j = 0; j < V; j++) {
        const double e = exp((double)(z[j] - mx));
        sum += e;
        weighted += e * z[j];
    }
    *lse = mx + log(sum);
    *mean = weighted / sum;
}

typedef struct chunk_scratch {
    int64_t *rows; /* [T] */
    float *hc;     /* [LOGPROB_CHUNK, hidden] */
    float *z;      /* [LOGPROB_CHUNK, vocab] */
} chunk_scratch;

static int scratch_init(chunk_scratch *s, const model *m, int64_t T)
{
    s->rows = malloc((size_t)(T ? T : 1) * sizeof *s->rows);
    s->hc = malloc((size_t)(LOGPROB_CHUNK * m->config.hidden_size) * sizeof *s->hc);
    s->z = malloc((size_t)(LOGPROB_CHUNK * m->config.vocab_size) * sizeof *s->z);
    return s->rows && s->hc && s->z ? 0 : -1;
}

static void scratch_free(chunk_scratch *s)
{
    free(s->rows);
    free(s->hc);
    free(s->z);
}

void model_logprobs(const model *m, const model_acts *acts, const int32_t *targets, float *logp,
                    float *entropy)
{
    const int64_t T = acts->n_tokens, V = m->config.vocab_size;
    chunk_scratch s;
    memset(logp, 0, (size_t)T * sizeof *logp);
    memset(entropy, 0, (size_t)T * sizeof *entropy);
    if (scratch_init(&s, m, T) != 0) {
        scratch_free(&s);
        for (int64_t t = 0; t < T; t++)
            logp[t] = entropy[t] = NAN; /* no memory: poison rather than lie */
        return;
    }
    const int64_t n_rows = gather_rows(targets, T, s.rows);
    for (int64_t c0 = 0; c0 < n_rows; c0 += LOGPROB_CHUNK) {
        const int64_t n = n_rows - c0 < LOGPROB_CHUNK ? n_rows - c0 : LOGPROB_CHUNK;
        chunk_logits(m, acts, s.rows + c0, n, s.hc, s.z);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < n; r++) {
            const int64_t t = s.rows[c0 + r];
            const float *z = s.z + r * V;
            double lse, mean;
            row_stats(z, V, &lse, &mean);
            logp[t] = (float)(z[targets[t]] - lse);
            /* H = lse - E_p[z] */
            entropy[t] = (float)(lse - mean);
        }
    }
    scratch_free(&s);
}

int logprobs_backward(const model *m, const model_acts *acts, const int32_t *targets,
                      const float *dlogp, const float *dentropy, float *dh, float *dlm_head,
                      kpo_error *err)
{
    const int64_t T = acts->n_tokens, V = m->config.vocab_size, hd = m->config.hidden_size;
    chunk_scratch s;
    if (scratch_init(&s, m, T) != 0) {
        scratch_free(&s);
        return error_set(err, "out of memory for the log-prob chunk");
    }
    memset(dh, 0, (size_t)(T * hd) * sizeof *dh);
    const int64_t n_rows = gather_rows(targets, T, s.rows);
    for (int64_t c0 = 0; c0 < n_rows; c0 += LOGPROB_CHUNK) {
        const int64_t n = n_rows - c0 < LOGPROB_CHUNK ? n_rows - c0 : LOGPROB_CHUNK;
        chunk_logits(m, acts, s.rows + c0, n, s.hc, s.z);
        /* dz_k = dlogp (1[k = y] - p_k) - dH p_k (z_k - E_p[z]) */
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < n; r++) {
            const int64_t t = s.rows[c0 + r];
            float *z = s.z + r * V;
            double lse, mean;
            row_stats(z, V, &lse, &mean);
            const double a = dlogp ? dlogp[t] : 0, b = dentropy ? dentropy[t] : 0;
            for (int64_t j = 0; j < V; j++) {
                const double p = exp(z[j] - lse);
                z[j] = (float)(-a * p - b * p * (z[j] - mean));
            }
            z[targets[t]] += (float)a;
        }
        float *dhc = s.hc; /* h rows are in hc; dh rows go to a fresh buffer */
        float *tmp = malloc((size_t)(n * hd) * sizeof *tmp);
        if (!tmp) {
            scratch_free(&s);
            return error_set(err, "out of memory for the log-prob chunk");
        }
        ops_linear_dw(n, hd, V, s.z, dhc, dlm_head);
        ops_linear_dx(n, hd, V, s.z, m->weights.lm_head, tmp, 0.0f);
        for (int64_t r = 0; r < n; r++)
            memcpy(dh + s.rows[c0 + r] * hd, tmp + r * hd, (size_t)hd * sizeof *tmp);
        free(tmp);
    }
    scratch_free(&s);
    return KPO_OK;
}

void model_logits(const model *m, const model_acts *acts, float *logits)
{
    ops_linear(acts->n_tokens, m->config.hidden_size, m->config.vocab_size, acts->h,
               m->weights.lm_head, logits);
}
