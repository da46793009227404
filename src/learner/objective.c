/* The policy objectives on the CPU (objective.h): the learner's table of
 * keys, config checks, and objective_compute over ragged responses in
 * double, the per-token arithmetic shared with the GPU (objective_token.h). */
#include "learner/objective.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/param_table.h"
#include "filter/filter_official.h"
#include "learner/learner_step.h"
#include "learner/objective_token.h"

static const char *const KIND_NAMES[OBJECTIVE_COUNT] = {"kpo", "grpo", "gspo"};
static const char *const AGG_NAMES[LOSS_AGG_COUNT] = {"token-mean", "seq-mean-token-mean",
                                                      "seq-mean-token-sum"};

#define AT(member) PARAM_AT(learner_config, member)

/* INI order (the [learner] section of --help-config and run files). */
static const param_def LEARNER_PARAMS[] = {
    {.name = "objective", .type = CONFIG_CHOICE, .default_value = "kpo",
     .choices = "kpo|grpo|gspo", .help = "policy objective", AT(objective.kind)},
    {.name = "minibatches", .type = CONFIG_INT, .default_value = "4", .min = 1, .max = 1e6,
     .help = "optimizer steps per rollout batch (M)", AT(minibatches)},
    {.name = "clip", .type = CONFIG_BOOL, .default_value = "true", .help = "clipped surrogate",
     AT(objective.clip)},
    {.name = "clip_low", .type = CONFIG_DOUBLE, .default_value = "3e-4", .min = 0,
     .max = 0.999999, .help = "eps_low", AT(objective.clip_low)},
    {.name = "clip_high", .type = CONFIG_DOUBLE, .default_value = "4e-4", .min = 0, .max = 100,
     .help = "eps_high", AT(objective.clip_high)},
    {.name = "dual_clip", .type = CONFIG_DOUBLE, .default_value = "0", .min = 0, .max = 1e6,
     .help = "grpo: dual-clip c > 1, 0 off", AT(objective.dual_clip)},
    {.name = "loss_aggregation", .type = CONFIG_CHOICE, .default_value = "seq-mean-token-mean",
     .choices = "token-mean|seq-mean-token-mean|seq-mean-token-sum", .help = "loss aggregation",
     AT(objective.aggregation)},
    {.name = "norm_adv_by_std", .type = CONFIG_BOOL, .default_value = "true",
     .help = "GRPO (true) or Dr. GRPO (false) advantages", AT(norm_adv_by_std)},
    {.name = "adv_eps", .type = CONFIG_DOUBLE, .default_value = "1e-6", .min = 0, .max = 1,
     .help = "advantage std epsilon", AT(adv_eps)},
    {.name = "log_ratio_max", .type = CONFIG_DOUBLE, .default_value = "10", .min = 1e-9,
     .max = 1e6, .help = "kpo/gspo: clamp of the log-ratio", AT(objective.log_ratio_max)},
    {.name = "micro_batch_tokens", .type = CONFIG_INT, .default_value = "0", .min = 0,
     .max = 1e12,
     .help = "forward/backward over micro-batches of whole sequences up to this many tokens; 0: "
             "a learner's share at once",
     AT(micro_batch_tokens)},
    {.name = "minibatch_order", .type = CONFIG_CHOICE, .default_value = "prompt",
     .choices = "prompt|balanced",
     .help = "what a mini-batch holds: whole groups in rollout order, or verl's balance_batch "
             "order (docs/minibatch-order.md)",
     AT(minibatch_order)},
    {.name = "balance_dp_size", .type = CONFIG_INT, .default_value = "0", .min = 0, .max = 1e6,
     .help = "minibatch_order = balanced: the verl data-parallel ranks mimicked (the paper's "
             "script: 2); 0: the learner ranks",
     AT(balance_dp_size)},
    {.name = "nonfinite_update", .type = CONFIG_CHOICE, .default_value = "skip",
     .choices = "skip|fail",
     .help = "an update whose loss or gradient norm is not finite: skip it (verl's actor; counted "
             "in skipped_updates) or end the run",
     AT(fail_nonfinite)},
};

const param_def *learner_params(size_t *n_rows)
{
    *n_rows = sizeof LEARNER_PARAMS / sizeof LEARNER_PARAMS[0];
    return LEARNER_PARAMS;
}

/* The [learner] table's defaults (kpo, eps 3e-4 / 4e-4, clipped,
 * seq-mean-token-mean, log-ratio clamp 10) and the filter's. */
void objective_config_default(objective_config *cfg)
{
    learner_config defaults;
    memset(&defaults, 0, sizeof defaults);
    param_table_defaults(LEARNER_PARAMS, sizeof LEARNER_PARAMS / sizeof LEARNER_PARAMS[0],
                         &defaults);
    *cfg = defaults.objective;
    filter_config_default(&cfg->filter);
}

int objective_config_validate(const objective_config *cfg, kpo_error *err)
{
    if (cfg->kind < 0 || cfg->kind >= OBJECTIVE_COUNT)
        return error_set(err, "objective: unknown kind %d", (int)cfg->kind);
    if (!(cfg->clip_low >= 0 && cfg->clip_low < 1))
        return error_set(err, "clip_low: must be in [0, 1), got %g", cfg->clip_low);
    if (!(cfg->clip_high >= 0 && isfinite(cfg->clip_high)))
        return error_set(err, "clip_high: must be >= 0, got %g", cfg->clip_high);
    if (!(cfg->dual_clip == 0 || (cfg->dual_clip > 1 && isfinite(cfg->dual_clip))))
        return error_set(err, "dual_clip: must be 0 (off) or > 1, got %g", cfg->dual_clip);
    if (cfg->aggregation < 0 || cfg->aggregation >= LOSS_AGG_COUNT)
        return error_set(err, "loss_aggregation: unknown mode %d", (int)cfg->aggregation);
    if (!(cfg->log_ratio_max > 0))
        return error_set(err, "log_ratio_max: must be > 0, got %g", cfg->log_ratio_max);
    if (cfg->official_width < 0 || cfg->official_width > (1 << 24))
        return error_set(err, "official_width: must be in [0, 2^24], got %lld",
                         (long long)cfg->official_width);
    if (cfg->kind == OBJECTIVE_KPO)
        return filter_config_validate(&cfg->filter, err);
    return KPO_OK;
}

static int parse_name(const char *name, const char *const *names, int count, const char *what,
                      int *out, kpo_error *err)
{
    for (int k = 0; k < count; k++)
        if (strcmp(name, names[k]) == 0) {
            *out = k;
            return KPO_OK;
        }
    char valid[256] = "";
    size_t used = 0;
    for (int k = 0; k < count && used < sizeof valid; k++)
        used += (size_t)snprintf(valid + used, sizeof valid - used, "%s%s", k ? ", " : "",
                                 names[k]);
    return error_set(err, "%s: unknown value '%s' (valid: %s)", what, name, valid);
}

int objective_kind_parse(const char *name, objective_kind *kind, kpo_error *err)
{
    int k = 0;
    if (parse_name(name, KIND_NAMES, OBJECTIVE_COUNT, "objective", &k, err) != KPO_OK)
        return KPO_ERR;
    *kind = (objective_kind)k;
    return KPO_OK;
}

const char *objective_kind_name(objective_kind kind)
{
    return (kind >= 0 && kind < OBJECTIVE_COUNT) ? KIND_NAMES[kind] : "?";
}

int loss_aggregation_parse(const char *name, loss_aggregation *agg, kpo_error *err)
{
    int k = 0;
    if (parse_name(name, AGG_NAMES, LOSS_AGG_COUNT, "loss_aggregation", &k, err) != KPO_OK)
        return KPO_ERR;
    *agg = (loss_aggregation)k;
    return KPO_OK;
}

const char *loss_aggregation_name(loss_aggregation agg)
{
    return (agg >= 0 && agg < LOSS_AGG_COUNT) ? AGG_NAMES[agg] : "?";
}

void objective_metrics_init(objective_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->raw_ratio_min = m->used_ratio_min = INFINITY;
    m->raw_ratio_max = m->used_ratio_max = -INFINITY;
    innov_stats_init(&m->innovation);
}

/* metrics' per-token scalars as an objective_sums, and back. */
static objective_sums sums_of(const objective_metrics *m)
{
    objective_sums s;
    objective_sums_clear(&s);
    s.loss = m->loss;
    s.clipped = m->clipped_tokens;
    s.log_ratio = m->log_ratio_sum;
    s.raw_min = m->raw_ratio_min;
    s.raw_max = m->raw_ratio_max;
    s.raw_sum = m->raw_ratio_sum;
    s.used_min = m->used_ratio_min;
    s.used_max = m->used_ratio_max;
    s.used_sum = m->used_ratio_sum;
    return s;
}

static void sums_store(const objective_sums *s, objective_metrics *m)
{
    m->loss = s->loss;
    m->clipped_tokens = s->clipped;
    m->log_ratio_sum = s->log_ratio;
    m->raw_ratio_min = s->raw_min;
    m->raw_ratio_max = s->raw_max;
    m->raw_ratio_sum = s->raw_sum;
    m->used_ratio_min = s->used_min;
    m->used_ratio_max = s->used_max;
    m->used_ratio_sum = s->used_sum;
}

void objective_metrics_add_sums(objective_metrics *metrics, const objective_sums *s,
                                double n_tokens)
{
    objective_sums total = sums_of(metrics);
    objective_sums_merge(&total, s);
    sums_store(&total, metrics);
    metrics->tokens += n_tokens;
}

void objective_metrics_merge(objective_metrics *into, const objective_metrics *other)
{
    objective_sums scalars = sums_of(other);
    objective_metrics_add_sums(into, &scalars, other->tokens);
    innov_stats_merge(&into->innovation, &other->innovation);
}

/* The official filter's x_hat for one response of n tokens in a row padded
 * to the official width (at least n): l[t] for t < n, and *padding_nan set
 * when a padded position came out NaN (verl's masked loss is then NaN). */
static int official_log_ratio(const objective_config *cfg, const double *z, int64_t n,
                              double *l, int *padding_nan, kpo_error *err)
{
    const int64_t width = cfg->official_width > n ? cfg->official_width : n;
    float *row = malloc((size_t)width * 3 * sizeof *row);
    if (!row)
        return error_set(err, "objective: out of memory for a %lld-token padded row",
                         (long long)width);
    float *mask = row + width, *x_hat = row + 2 * width;
    for (int64_t t = 0; t < width; t++) {
        row[t] = t < n ? (float)z[t] : 0.0f; /* verl's log-probs are float32 */
        mask[t] = t < n ? 1.0f : 0.0f;
    }
    const filter_config *f = &cfg->filter;
    filter_official_apply(f->q, f->v, f->p0, f->rho0, row, mask, 1, width, x_hat);
    for (int64_t t = 0; t < width; t++) {
        if (t < n)
            l[t] = (double)x_hat[t];
        else if (isnan(x_hat[t]))
            *padding_nan = 1;
    }
    free(row);
    return KPO_OK;
}

/* The per-token log-ratio l_t the surrogate uses, for one response. */
static int response_log_ratio(const objective_config *cfg, const double *z, int64_t n,
                              double *l, innov_stats *stats, int *padding_nan, kpo_error *err)
{
    switch (cfg->kind) {
    case OBJECTIVE_KPO: {
        int64_t offsets[2] = {0, n};
        filter_outputs out = {.rho = l};
        if (filter_apply(&cfg->filter, z, offsets, 1, &out, stats, err) != KPO_OK)
            return KPO_ERR;
        return cfg->official_width > 0 ? official_log_ratio(cfg, z, n, l, padding_nan, err)
                                       : KPO_OK;
    }
    case OBJECTIVE_GSPO: {
        double mean = objective_response_mean(z, n);
        for (int64_t t = 0; t < n; t++)
            l[t] = mean;
        return KPO_OK;
    }
    default:
        memcpy(l, z, (size_t)n * sizeof *l);
        return KPO_OK;
    }
}

int objective_compute(const objective_config *cfg, const double *logp, const double *logp_old,
                      const int64_t *offsets, int64_t n_responses, const double *advantages,
                      objective_normalizer norm, double *d_logp, objective_metrics *metrics,
                      kpo_error *err)
{
    if (objective_config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    if (!(norm.responses > 0) || !(norm.tokens > 0))
        return error_set(err, "objective: the global batch has no responses or tokens");
    int64_t longest = 0;
    for (int64_t r = 0; r < n_responses; r++)
        if (offsets[r + 1] - offsets[r] > longest)
            longest = offsets[r + 1] - offsets[r];
    double *z = malloc((size_t)(longest ? longest : 1) * sizeof *z);
    double *l = malloc((size_t)(longest ? longest : 1) * sizeof *l);
    if (!z || !l) {
        free(z);
        free(l);
        return error_set(err, "objective: out of memory for a %lld-token response",
                         (long long)longest);
    }
    int status = KPO_OK, padding_nan = 0;
    for (int64_t r = 0; r < n_responses && status == KPO_OK; r++) {
        const int64_t first = offsets[r], n = offsets[r + 1] - offsets[r];
        if (n == 0)
            continue;
        for (int64_t t = 0; t < n; t++) {
            z[t] = logp[first + t] - logp_old[first + t];
            if (!isfinite(z[t])) {
                status = error_set(err, "objective: log-ratio of response %lld, token %lld is "
                                        "not finite", (long long)r, (long long)t);
                break;
            }
        }
        if (status != KPO_OK ||
            (status = response_log_ratio(cfg, z, n, l, &metrics->innovation, &padding_nan,
                                         err)) != KPO_OK)
            break;
        const double weight = objective_token_weight(cfg->aggregation, norm, n),
                     advantage = advantages[r];
        /* Starting from metrics' own values keeps the CPU's accumulation
         * one sequential pass over all tokens. */
        objective_sums s = sums_of(metrics);
        for (int64_t t = 0; t < n; t++) {
            objective_token tok = objective_token_eval(cfg, advantage, weight, l[t]);
            d_logp[first + t] = tok.d_logp;
            objective_sums_add(&s, &tok, z[t]);
        }
        sums_store(&s, metrics);
        metrics->tokens += (double)n;
    }
    if (padding_nan)
        metrics->loss = NAN; /* NaN x mask 0 is NaN: verl's whole loss */
    free(z);
    free(l);
    return status;
}
