/* Where the model computes, behind one set of calls: the CPU model (fp32,
 * cpu/model_compute.h) or the GPU model (bf16 on one device, model_cuda.h).
 * The learner and the rollout are written once against this; `kpo train`
 * picks the device from the config key run.device.
 *
 * The host `model` is always there: its config, vocabulary size and (on
 * the CPU) the weights the computation uses. On CUDA the device holds the
 * live weights and optimizer state; the host copy is refreshed only by
 * model_backend_sync_to_host (before a checkpoint). */
#ifndef KPO_MODEL_MODEL_BACKEND_H
#define KPO_MODEL_MODEL_BACKEND_H

#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
/* The CPU backend's activations and KV cache live in model_backend by value:
 * this dispatcher owns both backends, so it sees the CPU model's types. */
#include "model/cpu/model_compute.h"
#include "model/model_cuda.h"
#include "model/optimizer_adamw.h"
#include "sampling/sampler.h"

typedef enum model_device { MODEL_DEVICE_CPU, MODEL_DEVICE_CUDA } model_device;

/* "cpu" or "cuda". */
int model_device_parse(const char *text, model_device *out, kpo_error *err);
const char *model_device_name(model_device device);

/* One response's random source, named two ways so either backend draws the
 * same numbers: the host stream (the CPU sampler advances it) and (stream
 * id, draws so far), from which the device recomputes the same draw. */
typedef struct model_backend_stream {
    rng_stream rng;
    uint64_t stream_id;
    uint64_t draws;
} model_backend_stream;

/* The stream of response `sample` of `prompt` at `step`, as
 * sampler_stream_init names it. */
void model_backend_stream_init(model_backend_stream *s, uint64_t seed, int64_t step,
                               int64_t prompt, int64_t sample);

typedef struct model_backend {
    model_device device;
    model *m;             /* host model, borrowed */
    adamw_state *opt;     /* borrowed; NULL: inference only. On CUDA the host copy a
                             checkpoint saves and a resume uploads */
    model_weights *grads; /* CPU training: the gradient buffer, borrowed */
    /* CPU: activations kept from forward to backward, and decode state. */
    model_acts acts;
    int have_acts;
    int32_t *targets;     /* the forward's targets, which backward needs again */
    int64_t targets_capacity;
    model_kv_cache cache;
    int have_cache;
    sampler_scratch scratch;
    float *logits;        /* [n_slots, vocab] of the last decode step */
    /* CUDA */
    gpu_model *gpu;
    int host_stale;       /* the device's weights moved on since the host copy */
    uint64_t *stream_ids, *draw_index; /* [stream_capacity] host staging for sampling */
    int64_t stream_capacity;
} model_backend;

/* The CPU model m; opt and grads (borrowed) are needed only to train. */
model_backend model_backend_cpu(model *m, adamw_state *opt, model_weights *grads);
/* Read-only use (evaluation, generation): nothing writes m's weights. */
model_backend model_backend_cpu_eval(const model *m);

/* Uploads m (and, when training, opt's moments and step: a resumed run's
 * state) to a new GPU model on the current device. o->train must match
 * opt != NULL. */
int model_backend_cuda_create(model_backend *b, model *m, adamw_state *opt,
                              const gpu_model_options *o, kpo_error *err);

/* Frees what the backend owns (activations, decode state, the GPU model);
 * m, opt and grads stay the caller's. */
void model_backend_free(model_backend *b);

/* Training forward of a packed batch: logp and entropy [n_tokens] (host)
 * per model_logprobs' contract for targets. The activations are kept for
 * model_backend_backward; batch and its arrays must outlive them. */
int model_backend_forward(model_backend *b, const model_batch *batch, const int32_t *targets,
                          float *logp, float *entropy, kpo_error *err);
/* grads += d/dtheta sum_t dlogp[t] logp[t] + dentropy[t] entropy[t] for the
 * last forward (host arrays [n_tokens]; dentropy may be NULL). */
int model_backend_backward(model_backend *b, const float *dlogp, const float *dentropy,
                           kpo_error *err);
/* Releases the CPU activations early (the GPU model's are preallocated). */
void model_backend_drop_acts(model_backend *b);

/* ---- The device objective's path (CUDA only; learner/objective_cuda.h) ----
 * model_backend_forward keeping logp and entropy on the device: *head
 * receives the GPU model's head buffers (device pointers [n_tokens]); the
 * caller writes head->dlogp on head->stream, then
 * model_backend_backward_device runs the backward from it. On the CPU both
 * fail (the host path is model_backend_forward / _backward). */
int model_backend_forward_device(model_backend *b, const model_batch *batch,
                                 const int32_t *targets, gpu_model_head *head, kpo_error *err);
int model_backend_backward_device(model_backend *b, bool with_dentropy, kpo_error *err);

int model_backend_zero_grads(model_backend *b, kpo_error *err);
/* The gradient buffer [n] to all-reduce in place: a host pointer on the
 * CPU, a device pointer on CUDA (which only comm_learner_nccl can sum). */
void model_backend_grads(model_backend *b, float **data, int64_t *n);
/* The global L2 norm of the gradients. */
int model_backend_grad_norm(model_backend *b, double *norm, kpo_error *err);
/* Clip, AdamW (adamw_step's contract); *grad_norm receives the pre-clip
 * norm when not NULL. */
int model_backend_optimizer_step(model_backend *b, double *grad_norm, kpo_error *err);
int64_t model_backend_optimizer_steps(const model_backend *b);
/* Brings the host model (and opt, when training) up to date with the
 * device: what a checkpoint saves. Nothing to do on the CPU. */
int model_backend_sync_to_host(model_backend *b, kpo_error *err);

/* Batched decoding (model_kv_cache / model_decode_step on the CPU). How
 * many of `wanted` slots of max_len tokens to use: all on the CPU; on CUDA
 * no more than fit in the device memory free now, with the activations of
 * the largest step: prompts of prefill_tokens, at most prefill_budget of
 * them at once when > 0 (gpu_decode_bytes). */
int64_t model_backend_decode_slots(const model_backend *b, int64_t wanted, int64_t max_len,
                                   int64_t prefill_tokens, int64_t prefill_budget);
int model_backend_decode_begin(model_backend *b, int64_t n_slots, int64_t max_len,
                               kpo_error *err);
/* Empties slots[0..n) only: their sequences ended, and the next step may
 * prefill new prompts there while the other slots keep decoding. */
int model_backend_decode_release(model_backend *b, int64_t n, const int64_t *slots,
                                 kpo_error *err);
/* Appends n_new[i] tokens to slot slots[i] of each of n_seqs sequences
 * (tokens back to back) and computes each one's next-token logits. */
int model_backend_decode_step(model_backend *b, int64_t n_seqs, const int64_t *slots,
                              const int64_t *n_new, const int32_t *tokens, kpo_error *err);
/* Draws tokens[i] for sequence i of the last decode step from streams[i]
 * (advanced by one draw), among the ids below drawable. */
int model_backend_decode_sample(model_backend *b, const sampler_config *cfg, uint64_t seed,
                                int64_t drawable, int64_t n_seqs,
                                model_backend_stream *const *streams, int32_t *tokens,
                                kpo_error *err);
void model_backend_decode_end(model_backend *b);

#endif
