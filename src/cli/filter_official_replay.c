/* The official-versus-exact replay behind `kpo filter --mode official`. Per
 * recorded step: one batch of that step's responses padded to the width,
 * the official x_hat [B, width] in float32, the exact rho in double, and
 * where they part: the first token whose values differ by more than the
 * tolerance, the first token where the official output stops being finite
 * (any row: a NaN gain poisons padding too), and the NaNs inside and
 * outside the responses. One NaN anywhere makes verl's masked loss NaN and
 * its actor skip the update. */
#include "cli/filter_official_replay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "filter/filter_official.h"

typedef struct step_batch {
    int64_t first, n;  /* responses [first, first + n) of the samples */
    float *z, *mask, *x_hat; /* [n, width] */
    double *rho;       /* [tokens of the n responses] exact, packed */
} step_batch;

typedef struct replay_summary {
    int64_t responses, tokens;
    int64_t first_diverged;   /* token position (0-based), -1: never */
    int64_t first_nonfinite;  /* token position in the padded batch, -1: never */
    int64_t nan_in_responses, nan_in_padding;
} replay_summary;

static int batch_fill(const filter_config *cfg, const runfile_samples *s, int64_t width,
                      step_batch *b, kpo_error *err)
{
    const int64_t base = s->offsets[b->first], tokens = s->offsets[b->first + b->n] - base;
    const size_t cells = (size_t)(b->n * width);
    b->z = calloc(cells ? cells : 1, sizeof *b->z);
    b->mask = calloc(cells ? cells : 1, sizeof *b->mask);
    b->x_hat = malloc((cells ? cells : 1) * sizeof *b->x_hat);
    b->rho = malloc((size_t)(tokens ? tokens : 1) * sizeof *b->rho);
    int64_t *offsets = malloc((size_t)(b->n + 1) * sizeof *offsets);
    if (!b->z || !b->mask || !b->x_hat || !b->rho || !offsets) {
        free(offsets);
        return error_set(err, "out of memory for %lld x %lld padded log-ratios", (long long)b->n,
                         (long long)width);
    }
    for (int64_t r = 0; r < b->n; r++) {
        offsets[r] = s->offsets[b->first + r] - base;
        for (int64_t i = s->offsets[b->first + r]; i < s->offsets[b->first + r + 1]; i++) {
            const int64_t t = i - s->offsets[b->first + r];
            b->z[r * width + t] = (float)s->values[i]; /* verl's log-probs are float32 */
            b->mask[r * width + t] = 1.0f;
        }
    }
    offsets[b->n] = tokens;
    filter_official_apply(cfg->q, cfg->v, cfg->p0, cfg->rho0, b->z, b->mask, b->n, width,
                          b->x_hat);
    filter_outputs out = {.rho = b->rho};
    int status = filter_apply(cfg, s->values + base, offsets, b->n, &out, NULL, err);
    free(offsets);
    return status;
}

static void batch_free(step_batch *b)
{
    free(b->z);
    free(b->mask);
    free(b->x_hat);
    free(b->rho);
}

static void batch_summarize(const runfile_samples *s, int64_t width, double tolerance,
                            const step_batch *b, replay_summary *out)
{
    const int64_t base = s->offsets[b->first];
    *out = (replay_summary){.responses = b->n, .first_diverged = -1, .first_nonfinite = -1};
    for (int64_t r = 0; r < b->n; r++) {
        const int64_t len = s->offsets[b->first + r + 1] - s->offsets[b->first + r];
        const int64_t packed = s->offsets[b->first + r] - base;
        out->tokens += len;
        for (int64_t t = 0; t < width; t++) {
            const float x = b->x_hat[r * width + t];
            if (!isfinite(x) && (out->first_nonfinite < 0 || t < out->first_nonfinite))
                out->first_nonfinite = t;
            if (isnan(x))
                *(t < len ? &out->nan_in_responses : &out->nan_in_padding) += 1;
            if (t < len && !(fabs((double)x - b->rho[packed + t]) <= tolerance) &&
                (out->first_diverged < 0 || t < out->first_diverged))
                out->first_diverged = t;
        }
    }
}

static void print_summary_row(int64_t step, const replay_summary *r)
{
    char diverged[32] = "never", nonfinite[32] = "never";
    if (r->first_diverged >= 0)
        snprintf(diverged, sizeof diverged, "%lld", (long long)r->first_diverged + 1);
    if (r->first_nonfinite >= 0)
        snprintf(nonfinite, sizeof nonfinite, "%lld", (long long)r->first_nonfinite + 1);
    printf("%6lld %9lld %9lld %14s %14s %12lld %12lld %8s\n", (long long)step,
           (long long)r->responses, (long long)r->tokens, diverged, nonfinite,
           (long long)r->nan_in_responses, (long long)r->nan_in_padding,
           r->nan_in_responses + r->nan_in_padding > 0 ? "NaN" : "finite");
}

static void print_tokens(const runfile_samples *s, int64_t width, const step_batch *b)
{
    const int64_t base = s->offsets[b->first];
    for (int64_t r = 0; r < b->n; r++) {
        const int64_t resp = b->first + r;
        for (int64_t i = s->offsets[resp]; i < s->offsets[resp + 1]; i++) {
            const int64_t t = i - s->offsets[resp];
            printf("%lld,%lld,%.17g,%.9g,%.17g\n", (long long)resp, (long long)t, s->values[i],
                   (double)b->x_hat[r * width + t], b->rho[i - base]);
        }
    }
}

int filter_official_replay(const filter_config *cfg, const runfile_samples *s,
                           const official_replay_options *o, const char *source, kpo_error *err)
{
    int64_t width = o->width;
    for (int64_t r = 0; r < s->n_responses; r++)
        if (s->offsets[r + 1] - s->offsets[r] > width)
            width = s->offsets[r + 1] - s->offsets[r];
    if (o->per_token)
        printf("response,token,z,official,exact\n");
    else
        printf("official float32 filter (verl-kpo kalman_filter) vs exact recursion on %s: "
               "q=%g v=%g p0=%g x0=%g, padded to %lld tokens, diverged = |official - exact| > "
               "%g\n%6s %9s %9s %14s %14s %12s %12s %8s\n",
               source, cfg->q, cfg->v, cfg->p0, cfg->rho0, (long long)width, o->tolerance,
               "step", "responses", "tokens", "first_diverged", "first_nonfinite",
               "nan_in_resp", "nan_in_pad", "loss");
    for (int64_t r = 0; r < s->n_responses;) {
        step_batch b = {.first = r, .n = 1};
        while (r + b.n < s->n_responses && (o->one_batch || s->step[r + b.n] == s->step[r]))
            b.n++;
        int status = batch_fill(cfg, s, width, &b, err);
        if (status == KPO_OK && o->per_token) {
            print_tokens(s, width, &b);
        } else if (status == KPO_OK) {
            replay_summary sum;
            batch_summarize(s, width, o->tolerance, &b, &sum);
            print_summary_row(s->step[r], &sum);
        }
        batch_free(&b);
        if (status != KPO_OK)
            return KPO_ERR;
        r += b.n;
    }
    return KPO_OK;
}
