/* AdamW's per-element update, shared by the CPU optimizer and the CUDA
 * kernel (KPO_HOSTDEV) so the two cannot drift. Compiled without FMA
 * contraction on both sides (C11's default; --fmad=false for the kernel),
 * every operation rounds alike: the GPU step is expected bit-identical. */
#ifndef KPO_MODEL_ADAMW_UPDATE_H
#define KPO_MODEL_ADAMW_UPDATE_H

#include <math.h>

#include "core/hostdev.h"

/* One step's scalars, the same for every element (adamw_coeffs_at). */
typedef struct adamw_coeffs {
    float clip;        /* gradient scale from global-norm clipping (1: none) */
    float b1, b2;      /* betas in fp32, as the moments are */
    double lr;         /* this step's learning rate */
    double bc1, bc2;   /* bias corrections 1 - beta^step */
    double eps;
    double decay_rate; /* lr * weight_decay; 0 for RMSNorm gains */
} adamw_coeffs;

/* Clips g in place (so the caller's gradient buffer holds what was used),
 * updates the moments, then the weight; decay is decoupled: it scales the
 * weight, not the gradient. */
static inline KPO_HOSTDEV void adamw_update_element(float *w, float *g, float *m1, float *m2,
                                                    float decay, const adamw_coeffs *c)
{
    const float gi = *g * c->clip;
    *g = gi;
    *m1 = c->b1 * *m1 + (1 - c->b1) * gi;
    *m2 = c->b2 * *m2 + (1 - c->b2) * gi * gi;
    const double mhat = *m1 / c->bc1, vhat = *m2 / c->bc2;
    *w -= decay * *w + (float)(c->lr * mhat / (sqrt(vhat) + c->eps));
}

#endif
