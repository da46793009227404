/* The model behind one set of calls on the CPU or the GPU (model_backend.h). */
#include "model/model_backend.h"

#include <stdlib.h>
#include <string.h>


int model_device_parse(const char *text, model_device *out, kpo_error *err)
{
    if (strcmp(text, "cpu") == 0)
        *out = MODEL_DEVICE_CPU;
    else if (strcmp(text, "cuda") == 0)
        *out = MODEL_DEVICE_CUDA;
    else
        return error_set(err, "device = '%s': expected cpu or cuda", text);
    return KPO_OK;
}

const char *model_device_name(model_device device)
{
    return device == MODEL_DEVICE_CUDA ? "cuda" : "cpu";
}

void model_backend_stream_init(model_backend_stream *s, uint64_t seed, int64_t step,
                               int64_t prompt, int64_t sample)
{
    sampler_stream_init(&s->rng, seed, step, prompt, sample);
    s->stream_id = rng_stream_id((uint64_t)step, (uint64_t)prompt, (uint64_t)sample);
    s->draws = 0;
}

model_backend model_backend_cpu(model *m, adamw_state *opt, model_weights *grads)
{
    model_backend b;
    memset(&b, 0, sizeof b);
    b.device = MODEL_DEVICE_CPU;
    b.m = m;
    b.opt = opt;
    b.grads = grads;
    return b;
}

model_backend model_backend_cpu_eval(const model *m)
{
    /* The one place const is dropped: without opt and grads no call can
     * reach the weights except to read them. */
    return model_backend_cpu((model *)m, NULL, NULL);
}

int model_backend_cuda_create(model_backend *b, model *m, adamw_state *opt,
                              const gpu_model_options *o, kpo_error *err)
{
    memset(b, 0, sizeof *b);
    b->device = MODEL_DEVICE_CUDA;
    b->m = m;
    b->opt = opt;
    if (o->train != (opt != NULL))
        return error_set(err, "model backend: a training GPU model needs the optimizer state, "
                              "an inference one none");
    if (gpu_model_create(&b->gpu, m, o, err) != KPO_OK)
        return KPO_ERR;
    /* A resumed run's moments and step; a fresh optimizer is all zeros,
     * which the device starts from anyway. */
    if (opt && opt->step > 0 && gpu_model_optimizer_upload(b->gpu, opt, err) != KPO_OK) {
        model_backend_free(b);
        return KPO_ERR;
    }
    return KPO_OK;
}

void model_backend_free(model_backend *b)
{
    model_backend_drop_acts(b);
    model_backend_decode_end(b);
    free(b->targets);
    free(b->stream_ids);
    free(b->draw_index);
    gpu_model_destroy(b->gpu);
    memset(b, 0, sizeof *b);
}

static int cpu_forward(model_backend *b, const model_batch *batch, const int32_t *targets,
                       float *logp, float *entropy, kpo_error *err)
{
    const int64_t T = batch->n_tokens;
    if (T > b->targets_capacity) {
        int32_t *grown = realloc(b->targets, (size_t)T * sizeof *grown);
        if (!grown)
            return error_set(err, "model: out of memory for a %lld-token batch", (long long)T);
        b->targets = grown;
        b->targets_capacity = T;
    }
    memcpy(b->targets, targets, (size_t)T * sizeof *targets);
    if (model_acts_init(&b->acts, b->m, T, err) != KPO_OK)
        return KPO_ERR;
    b->have_acts = 1;
    if (model_forward_train(b->m, batch, &b->acts, err) != KPO_OK) {
        model_backend_drop_acts(b);
        return KPO_ERR;
    }
    model_logprobs(b->m, &b->acts, targets, logp, entropy);
    return KPO_OK;
}

int model_backend_forward(model_backend *b, const model_batch *batch, const int32_t *targets,
                          float *logp, float *entropy, kpo_error *err)
{
    switch (b->device) {
    case MODEL_DEVICE_CPU:
        model_backend_drop_acts(b); /* before the new ones: one set at a time */
        return cpu_forward(b, batch, targets, logp, entropy, err);
    case MODEL_DEVICE_CUDA:
        return gpu_model_forward(b->gpu, batch, targets, logp, entropy, err);
    }
    return error_set(err, "model backend: unknown device");
}

int model_backend_backward(model_backend *b, const float *dlogp, const float *dentropy,
                           kpo_error *err)
{
    switch (b->device) {
    case MODEL_DEVICE_CPU:
        if (!b->have_acts || !b->grads)
            return error_set(err, "model backend: backward without a training forward");
        return model_backward(b->m, &b->acts, b->targets, dlogp, dentropy, b->grads, err);
    case MODEL_DEVICE_CUDA:
        return gpu_model_backward(b->gpu, dlogp, dentropy, err);
    }
    return error_set(err, "model backend: unknown device");
}

void model_backend_drop_acts(model_backend *b)
{
    if (b->have_acts)
        model_acts_free(&b->acts);
    b->have_acts = 0;
}

static int device_path_cuda_only(const model_backend *b, const char *who, kpo_error *err)
{
    if (!b || b->device != MODEL_DEVICE_CUDA)
        return error_set(err, "%s: the device objective path needs device = cuda (the model "
                              "is on the %s)", who, b ? model_device_name(b->device) : "?");
    return KPO_OK;
}

int model_backend_forward_device(model_backend *b, const model_batch *batch,
                                 const int32_t *targets, gpu_model_head *head, kpo_error *err)
{
    if (device_path_cuda_only(b, "model_backend_forward_device", err) != KPO_OK)
        return KPO_ERR;
    return gpu_model_forward_device(b->gpu, batch, targets, head, err);
}

int model_backend_backward_device(model_backend *b, bool with_dentropy, kpo_error *err)
{
    if (device_path_cuda_only(b, "model_backend_backward_device", err) != KPO_OK)
        return KPO_ERR;
    return gpu_model_backward_device(b->gpu, with_dentropy, err);
}

int model_backend_zero_grads(model_backend *b, kpo_error *err)
{
    switch (b->device) {
    case MODEL_DEVICE_CPU:
        if (!b->grads)
            return error_set(err, "model backend: no gradient buffer (inference only)");
        memset(b->grads->data, 0, (size_t)b->grads->n_params * sizeof *b->grads->data);
        return KPO_OK;
    case MODEL_DEVICE_CUDA:
        return gpu_model_zero_grads(b->gpu, err);
    }
    return error_set(err, "model backend: unknown device");
}

void model_backend_grads(model_backend *b, float **data, int64_t *n)
{
    if (b->device == MODEL_DEVICE_CUDA) {
        *data = gpu_model_grads(b->gpu, n);
        return;
    }
    *data = b->grads ? b->grads->data : NULL;
    *n = b->grads ? b->grads->n_params : 0;
}

int model_backend_grad_norm(model_backend *b, double *norm, kpo_error *err)
{
    switch (b->device) {
    case MODEL_DEVICE_CPU:
        if (!b->grads)
            return error_set(err, "model backend: no gradient buffer (inference only)");
        *norm = adamw_grad_norm(b->grads);
        return KPO_OK;
    case MODEL_DEVICE_CUDA:
        return gpu_model_grad_norm(b->gpu, norm, err);
    }
    return error_set(err, "model backend: unknown device");
}

int model_backend_optimizer_step(model_backend *b, double *grad_norm, kpo_error *err)
{
    if (!b->opt)
        return error_set(err, "model backend: no optimizer (inference only)");
    switch (b->device) {
    case MODEL_DEVICE_CPU:
        adamw_step(b->opt, b->m, b->grads, grad_norm);
        return KPO_OK;
    case MODEL_DEVICE_CUDA: {
        double norm;
        if (gpu_model_adamw_step(b->gpu, &norm, err) != KPO_OK)
            return KPO_ERR;
        b->host_stale = 1;
        if (grad_norm)
            *grad_norm = norm;
        return KPO_OK;
    }
    }
    return error_set(err, "model backend: unknown device");
}

int64_t model_backend_optimizer_steps(const model_backend *b)
{
    if (b->device == MODEL_DEVICE_CUDA)
        return b->opt ? gpu_model_adamw_steps(b->gpu) : 0;
    return b->opt ? b->opt->step : 0;
}

int model_backend_sync_to_host(model_backend *b, kpo_error *err)
{
    if (b->device == MODEL_DEVICE_CPU || !b->host_stale)
        return KPO_OK;
    if (gpu_model_download(b->gpu, b->m, err) != KPO_OK ||
        (b->opt && gpu_model_optimizer_download(b->gpu, b->opt, err) != KPO_OK))
        return error_prefix(err, "copying the GPU model to the host: ");
    b->host_stale = 0;
    return KPO_OK;
}

int64_t model_backend_decode_slots(const model_backend *b, int64_t wanted, int64_t max_len,
                                   int64_t prefill_tokens, int64_t prefill_budget)
{
    if (b->device == MODEL_DEVICE_CPU)
        return wanted;
    /* GPU_MODEL_DECODE_RESERVE stays free beyond what is counted: cuBLASLt
     * or the allocator may want a little more later. */
    return gpu_model_kv_slots_fit(b->gpu, wanted, max_len, prefill_tokens, prefill_budget,
                                  GPU_MODEL_DECODE_RESERVE);
}

static int cpu_decode_begin(model_backend *b, int64_t n_slots, int64_t max_len, kpo_error *err)
{
    const int64_t vocab = b->m->config.vocab_size;
    if (model_kv_cache_init(&b->cache, b->m, n_slots, max_len, err) != KPO_OK)
        return KPO_ERR;
    b->have_cache = 1;
    b->logits = malloc((size_t)(n_slots * vocab) * sizeof *b->logits);
    int status = b->logits ? KPO_OK
                           : error_set(err, "decode: out of memory for %lld x %lld logits",
                                       (long long)n_slots, (long long)vocab);
    if (status == KPO_OK)
        status = sampler_scratch_init(&b->scratch, vocab, err);
    if (status != KPO_OK)
        model_backend_decode_end(b);
    return status;
}

int model_backend_decode_begin(model_backend *b, int64_t n_slots, int64_t max_len,
                               kpo_error *err)
{
    model_backend_decode_end(b);
    switch (b->device) {
    case MODEL_DEVICE_CPU:
        return cpu_decode_begin(b, n_slots, max_len, err);
    case MODEL_DEVICE_CUDA:
        if (gpu_model_kv_cache_init(b->gpu, n_slots, max_len, err) != KPO_OK)
            return KPO_ERR;
        b->have_cache = 1;
        return KPO_OK;
    }
    return error_set(err, "model backend: unknown device");
}

int model_backend_decode_release(model_backend *b, int64_t n, const int64_t *slots,
                                 kpo_error *err)
{
    if (!b->have_cache)
        return error_set(err, "model backend: slot release before decode begin");
    if (b->device == MODEL_DEVICE_CUDA)
        return gpu_model_kv_cache_release(b->gpu, n, slots, err);
    return model_decode_release(b->cache.n_slots, b->cache.lengths, n, slots, err);
}

int model_backend_decode_step(model_backend *b, int64_t n_seqs, const int64_t *slots,
                              const int64_t *n_new, const int32_t *tokens, kpo_error *err)
{
    if (!b->have_cache)
        return error_set(err, "model backend: decode step before decode begin");
    if (b->device == MODEL_DEVICE_CUDA)
        return gpu_model_decode_step(b->gpu, n_seqs, slots, n_new, tokens, NULL, err);
    return model_decode_step(b->m, &b->cache, n_seqs, slots, n_new, tokens, b->logits, err);
}

/* The device draws from (stream id, draw index) alone: stage them. */
static int gpu_decode_sample(model_backend *b, const sampler_config *cfg, uint64_t seed,
                             int64_t drawable, int64_t n_seqs,
                             model_backend_stream *const *streams, int32_t *tokens,
                             kpo_error *err)
{
    if (n_seqs > b->stream_capacity) {
        uint64_t *ids = realloc(b->stream_ids, (size_t)n_seqs * sizeof *ids);
        if (ids)
            b->stream_ids = ids;
        uint64_t *draws = ids ? realloc(b->draw_index, (size_t)n_seqs * sizeof *draws) : NULL;
        if (!draws)
            return error_set(err, "decode: out of memory for %lld streams", (long long)n_seqs);
        b->draw_index = draws;
        b->stream_capacity = n_seqs;
    }
    for (int64_t i = 0; i < n_seqs; i++) {
        b->stream_ids[i] = streams[i]->stream_id;
        b->draw_index[i] = streams[i]->draws;
    }
    gpu_sample_request req = {.sampler = *cfg, .seed = seed, .drawable = drawable,
                              .stream_ids = b->stream_ids, .draw_index = b->draw_index};
    return gpu_model_sample(b->gpu, &req, n_seqs, tokens, err);
}

int model_backend_decode_sample(model_backend *b, const sampler_config *cfg, uint64_t seed,
                                int64_t drawable, int64_t n_seqs,
                                model_backend_stream *const *streams, int32_t *tokens,
                                kpo_error *err)
{
    if (!b->have_cache)
        return error_set(err, "model backend: sampling before decode begin");
    if (b->device == MODEL_DEVICE_CUDA) {
        if (gpu_decode_sample(b, cfg, seed, drawable, n_seqs, streams, tokens, err) != KPO_OK)
            return KPO_ERR;
    } else {
        const int64_t vocab = b->m->config.vocab_size;
        for (int64_t i = 0; i < n_seqs; i++)
            tokens[i] = sampler_draw(cfg, b->logits + i * vocab, drawable, &b->scratch,
                                     &streams[i]->rng);
    }
    /* One uniform per draw (none when greedy, where the index is unused),
     * so draws is also the stream position the device starts from. */
    for (int64_t i = 0; i < n_seqs; i++)
        streams[i]->draws++;
    return KPO_OK;
}

void model_backend_decode_end(model_backend *b)
{
    if (!b->have_cache)
        return;
    if (b->device == MODEL_DEVICE_CUDA) {
        gpu_model_kv_cache_free(b->gpu);
    } else {
        model_kv_cache_free(&b->cache);
        sampler_scratch_free(&b->scratch);
        memset(&b->scratch, 0, sizeof b->scratch);
        free(b->logits);
        b->logits = NULL;
    }
    b->have_cache = 0;
}
