/* `kpo train --plan` (train_plan.h): the memory plans gpu_model_create
 * would check, from the config alone. */
#include "train/train_plan.h"

#include <stdbool.h>
#include <string.h>

#include "model/model_config.h"
#include "train/train_gpu_options.h"

/* The plan on a device with `free_b` bytes free (0: unknown). With
 * learner.recompute = auto, the rule gpu_model_create applies decides, and
 * o->recompute says what it chose. */
static gpu_memory_plan plan_on(const model_config *c, gpu_model_options *o, size_t free_b)
{
    gpu_memory_plan p = gpu_model_plan(c, o);
    p.device_free = p.device_total = free_b;
    gpu_memory_plan_kv(&p, c, o);
    if (!o->train || !o->recompute_auto || free_b == 0)
        return p;
    gpu_model_options off = *o;
    off.recompute = false;
    gpu_memory_plan without = gpu_model_plan(c, &off);
    without.device_free = without.device_total = free_b;
    gpu_memory_plan_kv(&without, c, &off);
    if (!gpu_memory_plan_skip_recompute(&p, &without))
        return p;
    o->recompute = false;
    return without;
}

static void print_role(const train_settings *s, const model_config *c,
                       const train_rank_role *role, const char *label, size_t free_b, FILE *out)
{
    gpu_model_options o = train_gpu_options(s, role, s->max_prompt_tokens);
    const gpu_memory_plan p = plan_on(c, &o, free_b);
    fprintf(out, "%s (%d learner rank(s), %d rollout rank(s); prompts bounded by "
                 "data.max_prompt_tokens = %lld):\n",
            label, role->learner_size, role->rollout_size, (long long)s->max_prompt_tokens);
    gpu_memory_plan_print(&p, c, &o, out);
}

int train_plan_print(const train_settings *s, int world_size, double gpu_bytes, FILE *out,
                     kpo_error *err)
{
    if (world_size < 1)
        return error_set(err, "--ranks must be >= 1, not %d", world_size);
    const int R = s->rollout_ranks; /* < world_size: train_settings_from_config checked */
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", s->model_path);
    model_config c;
    if (model_config_load(path, &c, err) != KPO_OK)
        return error_prefix(err, "model.path: ");
    const size_t free_b = gpu_bytes > 0 ? (size_t)gpu_bytes : 0;
    if (R == 0) {
        const train_rank_role both = {.learner = true, .rollout = true,
                                      .learner_size = world_size, .rollout_size = world_size};
        print_role(s, &c, &both, "every rank, learner and rollout", free_b, out);
        return KPO_OK;
    }
    const train_rank_role learner = {.learner = true, .learner_size = world_size - R,
                                     .rollout_size = R};
    const train_rank_role rollout = {.rollout = true, .learner_size = world_size - R,
                                     .rollout_size = R};
    print_role(s, &c, &learner, "learner rank 0", free_b, out);
    print_role(s, &c, &rollout, "rollout rank 0", free_b, out);
    return KPO_OK;
}
