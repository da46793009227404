/* The official code's float32 filter (filter_official.h). Every line mirrors
 * one tensor operation of kalman_gains_nonsteady_1d / kalman_filter; the
 * comments give the PyTorch expression it stands for. */
#include "filter/filter_official.h"

#include <math.h>
#include <stdlib.h>

/* torch.clamp keeps NaN (fmaxf/fminf would drop it). */
static float clamp_keep_nan(float x, float low, float high)
{
    if (isnan(x))
        return x;
    return x < low ? low : x > high ? high : x;
}

void filter_official_gains(double q_process, double r_measure, double p0, int64_t T, float *K)
{
    const float Q = (float)q_process, R = (float)r_measure, P0 = (float)p0;
    const float q = Q / R, x0 = P0 / R;
    const float s = 1.0f + 0.5f * q;
    const int use_limit = fabsf(q) < 1e-12f;
    /* eta = log(s + sqrt(clamp(s * s - 1, min=0))) */
    const float eta = logf(s + sqrtf(clamp_keep_nan(s * s - 1.0f, 0.0f, INFINITY)));
    const float denom = clamp_keep_nan(sinhf(eta), 1e-20f, INFINITY);
    float u_prev = 0.0f; /* U_{-1} = 0 */
    for (int64_t k = 0; k < T; k++) {
        const float kk = (float)k + 1.0f;
        const float u = use_limit ? kk : sinhf(kk * eta) / denom; /* U_k = sinh((k+1) eta) / sinh(eta) */
        /* M^t = U_{t-1} M - U_{t-2} I; x_t = (A x0 + B) / (C x0 + D) */
        const float a = u - u_prev, b = u * q, c = u, d = u * (q + 1.0f) - u_prev;
        K[k] = clamp_keep_nan((a * x0 + b) / (c * x0 + d), 1e-6f, 1.0f - 1e-6f);
        u_prev = u;
    }
}

void filter_official_apply(double q_process, double r_measure, double p0, double x0,
                           const float *z, const float *mask, int64_t B, int64_t T,
                           float *x_hat)
{
    float *K = malloc((size_t)T * 3 * sizeof *K);
    if (!K) { /* the caller's buffers are fine; report through NaN, as the code would */
        for (int64_t i = 0; i < B * T; i++)
            x_hat[i] = NAN;
        return;
    }
    float *A = K + T, *c = K + 2 * T;
    filter_official_gains(q_process, r_measure, p0, T, K);
    const float log_eps = logf(1e-30f), exp_clip = 80.0f;
    double log_a_sum = 0.0; /* cumsum(log(a)): double accumulator, float32 outputs */
    for (int64_t t = 0; t < T; t++) {
        const float a = clamp_keep_nan(1.0f - K[t], 1e-12f, INFINITY);
        log_a_sum += (double)logf(a);
        const float log_a = clamp_keep_nan((float)log_a_sum, log_eps, INFINITY);
        A[t] = expf(log_a);
        const float inv_a = expf(clamp_keep_nan(-log_a, -INFINITY, exp_clip));
        c[t] = K[t] * inv_a;
    }
    const float x0f = (float)x0;
    for (int64_t b = 0; b < B; b++) {
        const float *zb = z + b * T, *mb = mask + b * T;
        double s = 0.0; /* S = cumsum(z * m * c, dim=-1) */
        for (int64_t t = 0; t < T; t++) {
            s += (double)((zb[t] * mb[t]) * c[t]);
            x_hat[b * T + t] = (A[t] * ((float)s + x0f)) * mb[t];
        }
    }
    free(K);
}

int64_t filter_official_first_nonfinite(const float *values, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(values[i]))
            return i;
    return n;
}
