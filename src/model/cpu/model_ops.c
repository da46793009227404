/* The CPU model's building blocks (model_ops.h): matrix products through
 * BLAS, RMSNorm, RoPE, SwiGLU, and their backwards. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "model/cpu/model_ops.h"

void ops_linear(int64_t rows, int64_t in, int64_t out, const float *x, const float *w, float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out, (int)in, 1.0f, x,
                (int)in, w, (int)in, 0.0f, y, (int)out);
}

void ops_linear_dx(int64_t rows, int64_t in, int64_t out, const float *dy, const float *w,
                   float *dx, float beta)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in, (int)out, 1.0f, dy,
                (int)out, w, (int)in, beta, dx, (int)in);
}

void ops_linear_dw(int64_t rows, int64_t in, int64_t out, const float *dy, const float *x,
                   float *dw)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)rows, 1.0f, dy,
                (int)out, x, (int)in, 1.0f, dw, (int)in);
}

void ops_rmsnorm(int64_t rows, int64_t n, const float *x, const float *w, float eps, float *y,
                 float *rstd)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double ss = 0;
        for (int64_t j = 0; j < n; j++)
            ss += (double)xr[j] * xr[j];
        float s = 1.0f / sqrtf((float)(ss / (double)n) + eps);
        rstd[r] = s;
        for (int64_t j = 0; j < n; j++)
            yr[j] = xr[j] * s * w[j];
    }
}

void ops_rmsnorm_backward(int64_t rows, int64_t n, const float *x, const float *w,
                          const float *rstd, const float *dy, float *dx, float *dw)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        const float s = rstd[r];
        double dot = 0;
        for (int64_t j = 0; j < n; j++)
            dot += (double)dyr[j] * w[j] * xr[j];
        const float c = (float)(dot * s * s * s / (double)n);
        for (int64_t j = 0; j < n; j++)
            dxr[j] += dyr[j] * w[j] * s - xr[j] * c;
    }
    /* Columns in parallel, rows in order: the sum is the same for any
     * thread count. */
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++) {
        double acc = 0;
        for (int64_t r = 0; r < rows; r++)
            acc += (double)dy[r * n + j] * x[r * n + j] * rstd[r];
        dw[j] += (float)acc;
    }
}

int ops_rope_table_init(ops_rope_table *table, int64_t n_positions, int64_t head_dim,
                        double theta)
{
    const int64_t half = head_dim / 2;
    table->n_positions = n_positions;
    table->half = half;
    table->cos = malloc((size_t)(n_positions * half) * sizeof(float));
    table->sin = malloc((size_t)(n_positions * half) * sizeof(float));
    if (!table->cos || !table->sin) {
        ops_rope_table_free(table);
        return -1;
    }
    for (int64_t j = 0; j < half; j++) {
        const float inv_freq = 1.0f / powf((float)theta, (float)(2 * j) / (float)head_dim);
        for (int64_t p = 0; p < n_positions; p++) {
            const float angle = (float)p * inv_freq;
            table->cos[p * half + j] = cosf(angle);
            table->sin[p * half + j] = sinf(angle);
        }
    }
    return 0;
}

void ops_rope_table_free(ops_rope_table *table)
{
    free(table->cos);
    free(table->sin);
    table->cos = table->sin = NULL;
}

void ops_rope_apply(const ops_rope_table *table, int64_t position, int64_t n_heads, float *x,
                    int inverse)
{
    const int64_t half = table->half;
    const float *c = table->cos + position * half, *s = table->sin + position * half;
    const float sign = inverse ? -1.0f : 1.0f;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * 2 * half;
        for (int64_t j = 0; j < half; j++) {
            const float a = v[j], b = v[j + half], sn = sign * s[j];
            v[j] = a * c[j] - b * sn;
            v[j + half] = b * c[j] + a * sn;
        }
    }
}
