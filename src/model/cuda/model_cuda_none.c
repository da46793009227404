/* Builds without CUDA: the GPU model and the device probe exist as symbols
 * that say why they cannot run, so callers need no #if. (The memory plan,
 * which needs no GPU, is model_cuda_plan.c, built everywhere.) */
#include "model/model_cuda.h"

#include <stdio.h>

#include "model/cuda/cuda_probe.h"

/* ---- cuda_probe.h: no GPUs, and every query says why ---- */

int cuda_probe_devices(char *description, size_t size)
{
    snprintf(description, size, "kpo was built without CUDA");
    return 0;
}

int cuda_memory_used_bytes(int device, size_t *used, kpo_error *err)
{
    *used = 0;
    return error_set(err, "gpu memory of GPU %d: kpo was built without CUDA", device);
}

/* ---- model_cuda.h ---- */

static int no_cuda(kpo_error *err)
{
    return error_set(err, "no usable GPU: kpo was built without CUDA (device = cuda is not "
                          "available in this build)");
}

int gpu_model_create(gpu_model **out, const model *m, const gpu_model_options *o, kpo_error *err)
{
    (void)m, (void)o;
    *out = NULL;
    return no_cuda(err);
}

void gpu_model_destroy(gpu_model *g) { (void)g; }
const gpu_memory_plan *gpu_model_memory_plan(const gpu_model *g) { (void)g; return NULL; }
int gpu_model_upload(gpu_model *g, const model *m, kpo_error *err) { (void)g, (void)m; return no_cuda(err); }
int gpu_model_download(const gpu_model *g, model *m, kpo_error *err) { (void)g, (void)m; return no_cuda(err); }

int gpu_model_optimizer_upload(gpu_model *g, const adamw_state *opt, kpo_error *err)
{
    (void)g, (void)opt;
    return no_cuda(err);
}

int gpu_model_optimizer_download(const gpu_model *g, adamw_state *opt, kpo_error *err)
{
    (void)g, (void)opt;
    return no_cuda(err);
}

int gpu_model_forward(gpu_model *g, const model_batch *batch, const int32_t *targets, float *logp,
                      float *entropy, kpo_error *err)
{
    (void)g, (void)batch, (void)targets, (void)logp, (void)entropy;
    return no_cuda(err);
}

int gpu_model_backward(gpu_model *g, const float *dlogp, const float *dentropy, kpo_error *err)
{
    (void)g, (void)dlogp, (void)dentropy;
    return no_cuda(err);
}

int gpu_model_forward_device(gpu_model *g, const model_batch *batch, const int32_t *targets,
                             gpu_model_head *head, kpo_error *err)
{
    (void)g, (void)batch, (void)targets, (void)head;
    return no_cuda(err);
}

int gpu_model_backward_device(gpu_model *g, bool with_dentropy, kpo_error *err)
{
    (void)g, (void)with_dentropy;
    return no_cuda(err);
}

int gpu_model_zero_grads(gpu_model *g, kpo_error *err) { (void)g; return no_cuda(err); }

float *gpu_model_grads(gpu_model *g, int64_t *n_params)
{
    (void)g;
    *n_params = 0;
    return NULL;
}

int gpu_model_grads_download(const gpu_model *g, model_weights *grads, kpo_error *err)
{
    (void)g, (void)grads;
    return no_cuda(err);
}

uint16_t *gpu_model_bf16_weights(gpu_model *g, int64_t *n_params)
{
    (void)g;
    *n_params = 0;
    return NULL;
}

int gpu_model_grad_norm(gpu_model *g, double *norm, kpo_error *err)
{
    (void)g, (void)norm;
    return no_cuda(err);
}

int gpu_model_adamw_step(gpu_model *g, double *grad_norm, kpo_error *err)
{
    (void)g, (void)grad_norm;
    return no_cuda(err);
}

int64_t gpu_model_adamw_steps(const gpu_model *g) { (void)g; return 0; }

int64_t gpu_model_kv_slots_fit(const gpu_model *g, int64_t wanted, int64_t max_len,
                               int64_t prefill_tokens, int64_t prefill_budget,
                               size_t reserve)
{
    (void)g, (void)wanted, (void)max_len, (void)prefill_tokens, (void)prefill_budget;
    (void)reserve;
    return 0;
}

int gpu_model_kv_cache_init(gpu_model *g, int64_t n_slots, int64_t max_len, kpo_error *err)
{
    (void)g, (void)n_slots, (void)max_len;
    return no_cuda(err);
}

void gpu_model_kv_cache_free(gpu_model *g) { (void)g; }
void gpu_model_kv_cache_reset(gpu_model *g) { (void)g; }
int gpu_model_kv_cache_release(gpu_model *g, int64_t n, const int64_t *slots, kpo_error *err)
{
    (void)g;
    (void)n;
    (void)slots;
    return no_cuda(err);
}

int gpu_model_decode_step(gpu_model *g, int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                          const int32_t *tokens, float *logits_host, kpo_error *err)
{
    (void)g, (void)n_seqs, (void)slots, (void)n_new, (void)tokens, (void)logits_host;
    return no_cuda(err);
}

int gpu_model_sample(gpu_model *g, const gpu_sample_request *req, int64_t n_seqs, int32_t *tokens,
                     kpo_error *err)
{
    (void)g, (void)req, (void)n_seqs, (void)tokens;
    return no_cuda(err);
}
