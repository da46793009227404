/* One decoder layer's forward, split where the decoder must store K and V
 * into its cache between the projections and the attention. Internal to
 * src/model/cpu. */
#ifndef KPO_MODEL_CPU_MODEL_LAYER_H
#define KPO_MODEL_CPU_MODEL_LAYER_H

#include "model/cpu/model_compute.h"

/* Carves a model_layer_acts for `capacity` tokens out of *cursor. */
void layer_acts_bind(const model_config *c, int64_t capacity, float **cursor,
                     model_layer_acts *a);
int64_t layer_acts_floats(const model_config *c, int64_t capacity);

/* a->x holds the input: fills xn, q_raw, k_raw, rstd_*, q, k, v. */
void layer_forward_qkv(const model *m, int64_t layer, int64_t T, const int32_t *positions,
                       const ops_rope_table *rope, model_layer_acts *a);

/* Attention over keys/values: token t sees rows key_row0[t] ..
 * key_row0[t] + positions[t] of k_rows/v_rows; then o_proj, the MLP and both
 * residuals, writing the layer's output to x_out. */
void layer_forward_rest(const model *m, int64_t layer, int64_t T, const int32_t *positions,
                        const float *k_rows, const float *v_rows, const int64_t *key_row0,
                        model_layer_acts *a, float *x_out);

/* The lm_head part of model_backward: recomputes logits chunk by chunk,
 * writes dh[T, hidden] (zero on rows without a target) and accumulates
 * d lm_head. */
int logprobs_backward(const model *m, const model_acts *acts, const int32_t *targets,
                      const float *dlogp, const float *dentropy, float *dh, float *dlm_head,
                      kpo_error *err);

#endif
