/* AdamW for both backends (optimizer_adamw.h): the [optim] table, the
 * learning-rate schedules, the grad norm and the CPU step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/optimizer_adamw.h"

#include <stddef.h>

#include "core/param_table.h"

#define AT(member) PARAM_AT(adamw_config, member)

/* INI order (the [optim] section of --help-config and run files). */
static const param_def ADAMW_PARAMS[] = {
    {.name = "lr", .type = CONFIG_DOUBLE, .default_value = "1e-6", .min = 0, .max = 10,
     .help = "peak learning rate", AT(lr)},
    {.name = "lr_schedule", .type = CONFIG_CHOICE, .default_value = "updates",
     .choices = "updates|verl",
     .help = "what the warmup counts: optimizer updates (warmup_steps), or rollout steps as "
             "verl's scheduler does (int(warmup_ratio x schedule_steps), lr 0 through the first "
             "batch)",
     AT(schedule)},
    {.name = "warmup_steps", .type = CONFIG_INT, .default_value = "3", .min = 0, .max = PARAM_BIG,
     .help = "lr_schedule = updates: optimizer updates of linear warmup", AT(warmup_steps)},
    {.name = "warmup_ratio", .type = CONFIG_DOUBLE, .default_value = "0.05", .min = 0, .max = 1,
     .help = "lr_schedule = verl: verl's lr_warmup_steps_ratio", PARAM_NOWHERE},
    {.name = "schedule_steps", .type = CONFIG_INT, .default_value = "0", .min = 0,
     .max = PARAM_BIG,
     .help = "lr_schedule = verl: the rollout steps verl schedules over (total_training_steps); "
             "0: run.steps",
     PARAM_NOWHERE},
    {.name = "weight_decay", .type = CONFIG_DOUBLE, .default_value = "0.1", .min = 0, .max = 10,
     .help = "decoupled weight decay", AT(weight_decay)},
    {.name = "beta1", .type = CONFIG_DOUBLE, .default_value = "0.9", .min = 0, .max = 0.999999,
     .help = "AdamW beta1", AT(beta1)},
    {.name = "beta2", .type = CONFIG_DOUBLE, .default_value = "0.999", .min = 0,
     .max = 0.999999999, .help = "AdamW beta2", AT(beta2)},
    {.name = "eps", .type = CONFIG_DOUBLE, .default_value = "1e-8", .min = 1e-30, .max = 1,
     .help = "AdamW epsilon", AT(eps)},
    {.name = "grad_clip", .type = CONFIG_DOUBLE, .default_value = "1.0", .min = 0,
     .max = PARAM_BIG, .help = "global norm clip (0: off)", AT(max_grad_norm)},
};

const param_def *adamw_params(size_t *n_rows)
{
    *n_rows = sizeof ADAMW_PARAMS / sizeof ADAMW_PARAMS[0];
    return ADAMW_PARAMS;
}

adamw_config adamw_config_default(void)
{
    adamw_config c = {.lr = 1e-6, .warmup_steps = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                      .weight_decay = 0.01, .max_grad_norm = 1.0};
    return c;
}

int adamw_init(adamw_state *s, const model *m, const adamw_config *config, kpo_error *err)
{
    memset(s, 0, sizeof *s);
    s->config = *config;
    s->n_params = m->weights.n_params;
    s->m = calloc((size_t)s->n_params, sizeof *s->m);
    s->v = calloc((size_t)s->n_params, sizeof *s->v);
    if (!s->m || !s->v) {
        adamw_free(s);
        return error_set(err, "adamw: out of memory for %lld moments", (long long)s->n_params);
    }
    return KPO_OK;
}

void adamw_free(adamw_state *s)
{
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

double adamw_lr_at(const adamw_config *c, int64_t step)
{
    if (c->schedule == ADAMW_SCHEDULE_VERL) {
        const int64_t per = c->updates_per_rollout > 0 ? c->updates_per_rollout : 1;
        const int64_t rollout = (step - 1) / per; /* rollout steps already scheduled */
        if (c->warmup_steps > 0 && rollout < c->warmup_steps)
            return c->lr * (double)rollout / (double)c->warmup_steps;
        return c->lr;
    }
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (double)step / (double)c->warmup_steps;
    return c->lr;
}

double adamw_grad_norm(const model_weights *g)
{
    double ss = 0;
    for (int64_t i = 0; i < g->n_params; i++)
        ss += (double)g->data[i] * g->data[i];
    return sqrt(ss);
}

adamw_coeffs adamw_coeffs_at(const adamw_config *c, int64_t step, double norm)
{
    adamw_coeffs k;
    k.clip = c->max_grad_norm > 0 && norm > c->max_grad_norm
                 ? (float)(c->max_grad_norm / (norm + 1e-6))
                 : 1.0f;
    k.lr = adamw_lr_at(c, step);
    k.bc1 = 1.0 - pow(c->beta1, (double)step);
    k.bc2 = 1.0 - pow(c->beta2, (double)step);
    k.b1 = (float)c->beta1;
    k.b2 = (float)c->beta2;
    k.eps = c->eps;
    k.decay_rate = k.lr * c->weight_decay;
    return k;
}

void adamw_step(adamw_state *s, model *m, model_weights *grads, double *grad_norm)
{
    const double norm = adamw_grad_norm(grads);
    if (grad_norm)
        *grad_norm = norm;
    s->step++;
    const adamw_coeffs k = adamw_coeffs_at(&s->config, s->step, norm);
    for (size_t t = 0; t < m->n_params_table; t++) {
        const model_param *p = &m->params[t];
        const float decay = p->is_norm ? 0.0f : (float)k.decay_rate;
        float *w = m->weights.data + p->offset, *g = grads->data + p->offset;
        float *m1 = s->m + p->offset, *m2 = s->v + p->offset;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < p->numel; i++)
            adamw_update_element(&w[i], &g[i], &m1[i], &m2[i], decay, &k);
    }
}
