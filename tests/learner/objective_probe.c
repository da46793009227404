/* Runs objective_compute on a batch read from a text file, for the PyTorch
 * comparison in test_objective_reference.py. Input (whitespace separated):
 *   kind agg clip clip_low clip_high dual_clip log_ratio_max q v mode kappa
 *   n_responses norm_responses norm_tokens
 *   per response: advantage n_tokens logp[n] logp_old[n]
 * Output: "loss L", "clipped C", then one d_logp per line. */
#include <stdio.h>
#include <stdlib.h>

#include "learner/objective.h"

int main(int argc, char **argv)
{
    FILE *f = argc > 1 ? fopen(argv[1], "r") : NULL;
    if (!f)
        return 2;
    char kind[32], agg[32], mode[32];
    objective_config cfg;
    objective_config_default(&cfg);
    long long n_responses;
    objective_normalizer norm;
    kpo_error err;
    if (fscanf(f, "%31s %31s %d %lf %lf %lf %lf %lf %lf %31s %lf %lld %lf %lf", kind, agg, &cfg.clip,
               &cfg.clip_low, &cfg.clip_high, &cfg.dual_clip, &cfg.log_ratio_max, &cfg.filter.q,
               &cfg.filter.v, mode, &cfg.filter.kappa, &n_responses, &norm.responses,
               &norm.tokens) != 14 ||
        objective_kind_parse(kind, &cfg.kind, &err) != KPO_OK ||
        loss_aggregation_parse(agg, &cfg.aggregation, &err) != KPO_OK ||
        filter_mode_parse(mode, &cfg.filter.mode, &err) != KPO_OK)
        return 3;
    double *logp = NULL, *logp_old = NULL, *adv = malloc((size_t)n_responses * sizeof *adv);
    int64_t *offsets = calloc((size_t)n_responses + 1, sizeof *offsets);
    size_t capacity = 0;
    for (long long r = 0; r < n_responses; r++) {
        long long n;
        if (fscanf(f, "%lf %lld", &adv[r], &n) != 2)
            return 4;
        offsets[r + 1] = offsets[r] + n;
        if ((size_t)offsets[r + 1] > capacity) {
            capacity = 2 * (size_t)offsets[r + 1];
            logp = realloc(logp, capacity * sizeof *logp);
            logp_old = realloc(logp_old, capacity * sizeof *logp_old);
        }
        for (long long t = 0; t < n; t++)
            if (fscanf(f, "%lf", &logp[offsets[r] + t]) != 1)
                return 5;
        for (long long t = 0; t < n; t++)
            if (fscanf(f, "%lf", &logp_old[offsets[r] + t]) != 1)
                return 5;
    }
    fclose(f);
    double *d_logp = malloc((size_t)(offsets[n_responses] + 1) * sizeof *d_logp);
    objective_metrics m;
    objective_metrics_init(&m);
    if (objective_compute(&cfg, logp, logp_old, offsets, n_responses, adv, norm, d_logp, &m,
                          &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("loss %.17g\nclipped %.0f\n", m.loss, m.clipped_tokens);
    for (int64_t i = 0; i < offsets[n_responses]; i++)
        printf("%.17g\n", d_logp[i]);
    return 0;
}
