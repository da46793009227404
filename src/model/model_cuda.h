/* The Qwen3 model on one GPU: bf16 weights and activations, fp32 master
 * weights, gradients and AdamW moments (same layout as model_weights: one
 * buffer in parameter-table order), the CPU model (cpu/model_compute.h) as its
 * oracle. Plain C: device memory is opaque here. Built from
 * src/model/cuda/model_cuda.c with CUDA, from cuda/model_cuda_none.c without,
 * where every call fails with "no usable GPU: kpo was built without CUDA". */
#ifndef KPO_MODEL_MODEL_CUDA_H
#define KPO_MODEL_MODEL_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "model/model.h"
#include "model/model_batch.h"
#include "model/optimizer_adamw.h"
#include "sampling/sampler.h"

typedef struct gpu_model gpu_model;

/* Sizes the GPU model and its memory plan (cuda/model_cuda_plan.c) share. */
enum { GPU_MODEL_LOGPROB_CHUNK = 1024 }; /* rows of fp32 logits at once, by default */
#define GPU_MODEL_GEMM_WORKSPACE ((size_t)32 << 20) /* cuBLASLt's: 32 MiB, NVIDIA's Hopper advice */
/* Device memory a rollout leaves free beside its KV cache (CUDA's own
 * allocations, cuBLASLt's heuristics, fragmentation). */
#define GPU_MODEL_DECODE_RESERVE ((size_t)256 << 20)

/* Which attention kernels the model runs (model.attention and
 * model.decode_attention). The first of each is the default: the paths a
 * GPU run has checked; the others are new and off until one has. */
typedef enum gpu_attention_impl {
    GPU_ATTENTION_KERNEL, /* kernels_attention.cu: own wmma FlashAttention-2-style tiles */
    GPU_ATTENTION_CUDNN   /* cuDNN 9's fused attention (attention_cudnn.h), the kernel as fallback */
} gpu_attention_impl;
typedef enum gpu_decode_attention_impl {
    GPU_DECODE_ATTENTION_BLOCK, /* one block per (query token, head) over the whole context */
    GPU_DECODE_ATTENTION_SPLIT  /* flash-decoding: the context split over blocks per kv head, then
                                   combined (kernels_attention_decode_split.cu) */
} gpu_decode_attention_impl;
typedef enum gpu_prefill_attention_impl {
    GPU_PREFILL_ATTENTION_DECODE, /* prompts through the decode attention, a query at a time */
    GPU_PREFILL_ATTENTION_FLASH   /* fresh prompts through the training forward's flash kernel */
} gpu_prefill_attention_impl;

typedef struct gpu_model_options {
    bool train;             /* fp32 master weights, gradients and AdamW state; false: a
                               rollout/eval copy with the bf16 weights alone */
    bool recompute;         /* keep only each layer's input and redo the layer in backward */
    bool recompute_auto;    /* train: recompute only where the plan without it does not fit,
                               or would take KV-cache slots from the rollout (the create
                               decides; recompute then says what it chose) */
    int64_t max_tokens;     /* the largest training micro-batch (tokens) the plan budgets */
    int64_t logprob_chunk;  /* rows whose fp32 logits exist at once; 0: GPU_MODEL_LOGPROB_CHUNK */
    adamw_config optim;     /* used when train */
    /* The rollout this model decodes (all 0: none), for the plan's KV
     * cache: responses per step on this rank, the slots wanted
     * (rollout.max_batch), each slot's positions (the longest prompt +
     * max_new_tokens) and the longest prompt (a slot's prefill). */
    int64_t decode_responses, decode_slots, decode_max_len, decode_prefill;
    int64_t decode_prefill_budget;              /* rollout.prefill_tokens (0: no limit) */
    bool decode_refill;                         /* rollout.schedule = refill */
    gpu_attention_impl attention;               /* training forward and backward */
    gpu_decode_attention_impl decode_attention; /* rollout and eval decode steps */
    gpu_prefill_attention_impl prefill_attention; /* decode steps' fresh prompts */
    bool decode_graphs; /* replay each pure decode step (one token per sequence) as a CUDA
                           graph (model.decode_graphs); turned off for good at the first
                           capture that fails */
} gpu_model_options;

/* What the device memory goes to, in bytes (printed at start-up). */
typedef struct gpu_memory_plan {
    size_t weights_bf16, master_fp32, grads_fp32, adam_fp32;
    size_t activations;     /* saved for backward at max_tokens */
    size_t layer_scratch;   /* one layer's working set (recomputed in backward) */
    size_t logprob_scratch; /* the logits chunk and its gradient */
    size_t workspace;       /* cuBLASLt and the attention backward */
    size_t total;
    size_t device_free, device_total; /* cudaMemGetInfo before allocation */
    /* The rollout's KV cache, sized from what the items above leave of
     * device_free (or, with the device unknown, for every slot wanted):
     * the rollout itself asks again at each step (gpu_model_kv_slots_fit). */
    size_t kv_slot;          /* one slot's K and V, every layer (gpu_decode_kv_bytes) */
    int64_t kv_slots;        /* slots that fit (at most options.decode_slots) */
    int64_t kv_slots_room;   /* slots the memory holds for the step's responses, whatever
                                rollout.max_batch says (0: device memory unknown) */
    size_t kv_cache;         /* kv_slots slots: gpu_decode_bytes(kv_slots) */
    int64_t decode_waves;    /* schedule = waves: rounds of kv_slots for decode_responses */
} gpu_memory_plan;

/* Device bytes a rollout of n slots of max_len positions needs: the bf16
 * K and V of every layer, the forward-only activations of its largest
 * step, and per sequence its fp32 logits row, last hidden row and step
 * bookkeeping. The largest step feeds n prompts of prefill_tokens at once,
 * or with a prefill budget (rollout.prefill_tokens > 0) at most
 * max(budget, one prompt) prompt tokens plus a token of every other slot.
 * What gpu_model_kv_slots_fit counts (adding the decode kernels'
 * workspaces) and the plan prints. */
size_t gpu_decode_bytes(const model_config *c, int64_t n, int64_t max_len,
                        int64_t prefill_tokens, int64_t prefill_budget);
/* The bf16 K and V of n_slots slots of max_len positions, every layer. */
size_t gpu_decode_kv_bytes(const model_config *c, int64_t n_slots, int64_t max_len);
/* The largest n <= wanted with gpu_decode_bytes(n) + extra <= bytes. */
int64_t gpu_decode_slots_within(const model_config *c, int64_t wanted, int64_t max_len,
                                int64_t prefill_tokens, int64_t prefill_budget, size_t extra,
                                size_t bytes);
/* learner.recompute = auto's rule, from the plans with and without
 * recomputation on the same device: without, when it fits (with
 * GPU_MODEL_DECODE_RESERVE to spare) and leaves a rollout on the same
 * model as many KV-cache slots (recomputation costs a second forward of
 * every layer; the rollout is the larger part of a step). */
bool gpu_memory_plan_skip_recompute(const gpu_memory_plan *with, const gpu_memory_plan *without);
/* Fills the plan's kv_* items and decode_waves from p->total and
 * p->device_free (0: unknown, every slot wanted is planned). */
void gpu_memory_plan_kv(gpu_memory_plan *p, const model_config *c, const gpu_model_options *o);

/* The plan for config c and options o without allocating anything
 * (device_free/device_total are 0; usable without a GPU). */
gpu_memory_plan gpu_model_plan(const model_config *c, const gpu_model_options *o);
void gpu_memory_plan_print(const gpu_memory_plan *plan, const model_config *c,
                           const gpu_model_options *o, FILE *out);

/* Selects nothing: the caller picked the device (comm_nccl_select_device).
 * Uploads m's weights (fp32 -> master, bf16 copy). Fails, naming the
 * shortfall, when the plan does not fit the free memory. */
int gpu_model_create(gpu_model **out, const model *m, const gpu_model_options *o,
                     kpo_error *err);
void gpu_model_destroy(gpu_model *g);
const gpu_memory_plan *gpu_model_memory_plan(const gpu_model *g);

/* Host <-> device weights (fp32 host; the device's master and bf16 copy,
 * or the bf16 copy alone when not training). Download is what a checkpoint
 * saves; upload follows a resume. */
int gpu_model_upload(gpu_model *g, const model *m, kpo_error *err);
int gpu_model_download(const gpu_model *g, model *m, kpo_error *err);
/* The AdamW moments and step count, for checkpoints (train only). */
int gpu_model_optimizer_upload(gpu_model *g, const adamw_state *opt, kpo_error *err);
int gpu_model_optimizer_download(const gpu_model *g, adamw_state *opt, kpo_error *err);

/* Training forward of a packed batch (host arrays; checked as
 * model_batch_validate): logp and entropy [n_tokens] host, per
 * model_logprobs' contract for targets [n_tokens] (host). Keeps what the
 * backward needs until the next forward. */
int gpu_model_forward(gpu_model *g, const model_batch *batch, const int32_t *targets,
                      float *logp, float *entropy, kpo_error *err);

/* After gpu_model_forward: grads += d/dtheta of sum_t dlogp[t] logp[t] +
 * dentropy[t] entropy[t] (host [n_tokens]; dentropy may be NULL). */
int gpu_model_backward(gpu_model *g, const float *dlogp, const float *dentropy,
                       kpo_error *err);

/* The device objective's path (learner/objective_cuda.h): the log-prob
 * head's buffers of the last forward, device pointers [n_tokens], valid
 * until the next forward. The caller writes dlogp (and dentropy) with
 * work ordered on stream (the model's: all its work runs there). */
typedef struct gpu_model_head {
    const float *logp, *entropy; /* the forward's outputs, per model_logprobs' contract */
    float *dlogp, *dentropy;     /* what gpu_model_backward_device reads */
    int64_t n_tokens;
    void *stream;                /* cudaStream_t */
} gpu_model_head;

/* gpu_model_forward that leaves logp and entropy on the device: *head
 * receives the buffers. */
int gpu_model_forward_device(gpu_model *g, const model_batch *batch, const int32_t *targets,
                             gpu_model_head *head, kpo_error *err);
/* gpu_model_backward from head->dlogp (and head->dentropy when
 * with_dentropy) as the caller left them on the device. */
int gpu_model_backward_device(gpu_model *g, bool with_dentropy, kpo_error *err);

int gpu_model_zero_grads(gpu_model *g, kpo_error *err);
/* The fp32 gradient buffer [n_params], device: what NCCL all-reduces. */
float *gpu_model_grads(gpu_model *g, int64_t *n_params);
/* The gradients, downloaded (tests). */
int gpu_model_grads_download(const gpu_model *g, model_weights *grads, kpo_error *err);
/* The bf16 weight copy [n_params], device: what the learner broadcasts to
 * rollout ranks; after a broadcast into it, nothing else needs refreshing. */
uint16_t *gpu_model_bf16_weights(gpu_model *g, int64_t *n_params);

/* adamw_grad_norm and adamw_step on the device. */
int gpu_model_grad_norm(gpu_model *g, double *norm, kpo_error *err);
int gpu_model_adamw_step(gpu_model *g, double *grad_norm, kpo_error *err);
int64_t gpu_model_adamw_steps(const gpu_model *g);

/* Batched decoding, as model_kv_cache / model_decode_step. The cache is
 * bf16 [layers, n_slots, max_len, kv_heads, head_dim] for K and for V.
 * gpu_model_kv_slots_fit: how many slots of max_len, at most `wanted`,
 * fit in the memory free now, keeping `reserve` bytes back, counting with
 * the cache a step's activations and logits (gpu_decode_bytes: prompts of
 * prefill_tokens, at most prefill_budget prompt tokens a step when > 0)
 * and the sampler's and split attention's workspaces. */
int64_t gpu_model_kv_slots_fit(const gpu_model *g, int64_t wanted, int64_t max_len,
                               int64_t prefill_tokens, int64_t prefill_budget, size_t reserve);
int gpu_model_kv_cache_init(gpu_model *g, int64_t n_slots, int64_t max_len, kpo_error *err);
void gpu_model_kv_cache_free(gpu_model *g);
/* Slot lengths go to 0 (a new chunk of sequences). */
void gpu_model_kv_cache_reset(gpu_model *g);
/* Slots slots[0..n) go back to length 0 (their sequences ended; the next
 * step may refill them with new prompts). Others keep what they hold. */
int gpu_model_kv_cache_release(gpu_model *g, int64_t n, const int64_t *slots, kpo_error *err);

/* Appends tokens to slots and computes the next-token logits (fp32, kept on
 * the device) after each sequence's last new token; logits_host
 * [n_seqs, vocab] receives a copy when not NULL (tests). */
int gpu_model_decode_step(gpu_model *g, int64_t n_seqs, const int64_t *slots,
                          const int64_t *n_new, const int32_t *tokens, float *logits_host,
                          kpo_error *err);

/* Draws one token per sequence of the last decode step from its logits on
 * the device: row i uses stream (seed, streams[i].stream_id) at draw
 * streams[i].draw_index (see model/cuda/kernels_sample.h); tokens [n_seqs]
 * host. Only ids below drawable are drawn. */
typedef struct gpu_sample_request {
    sampler_config sampler;
    uint64_t seed;
    int64_t drawable;
    const uint64_t *stream_ids;  /* [n_seqs] host */
    const uint64_t *draw_index;  /* [n_seqs] host */
} gpu_sample_request;
int gpu_model_sample(gpu_model *g, const gpu_sample_request *req, int64_t n_seqs,
                     int32_t *tokens, kpo_error *err);

#endif
