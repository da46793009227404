/* Building blocks shared by the training forward/backward and the decoder.
 * Matrices are row-major; weights keep HF's [out, in] layout so y = x W^T. */
#ifndef KPO_MODEL_CPU_MODEL_OPS_H
#define KPO_MODEL_CPU_MODEL_OPS_H

#include <math.h>
#include <stdint.h>

/* y[rows, out] = x[rows, in] W[out, in]^T */
void ops_linear(int64_t rows, int64_t in, int64_t out, const float *x, const float *w, float *y);
/* dx[rows, in] = beta * dx + dy[rows, out] W[out, in] */
void ops_linear_dx(int64_t rows, int64_t in, int64_t out, const float *dy, const float *w,
                   float *dx, float beta);
/* dw[out, in] += dy[rows, out]^T x[rows, in] */
void ops_linear_dw(int64_t rows, int64_t in, int64_t out, const float *dy, const float *x,
                   float *dw);

/* y = x / sqrt(mean(x^2) + eps) * w over each of `rows` rows of n. */
void ops_rmsnorm(int64_t rows, int64_t n, const float *x, const float *w, float eps, float *y,
                 float *rstd);
/* dx += d/dx, dw += d/dw of the above, given dy and the saved rstd. */
void ops_rmsnorm_backward(int64_t rows, int64_t n, const float *x, const float *w,
                          const float *rstd, const float *dy, float *dx, float *dw);

/* cos/sin of position * inv_freq_j for j < head_dim / 2, computed in fp32 as
 * HF does. */
typedef struct ops_rope_table {
    float *cos; /* [n_positions, head_dim / 2] */
    float *sin; /* [n_positions, head_dim / 2] */
    int64_t n_positions;
    int64_t half;
} ops_rope_table;

int ops_rope_table_init(ops_rope_table *table, int64_t n_positions, int64_t head_dim,
                        double theta);
void ops_rope_table_free(ops_rope_table *table);
/* Rotates each of n_heads vectors of one token in place (rotate-half pairs
 * i, i + d/2); inverse rotates by -angle, which is the backward. */
void ops_rope_apply(const ops_rope_table *table, int64_t position, int64_t n_heads, float *x,
                    int inverse);

static inline float ops_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

#endif
