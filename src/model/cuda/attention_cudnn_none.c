/* attention_cudnn.h in a build without cuDNN (meson option cudnn, or no
 * cuDNN headers/library found at configure time): every entry point fails
 * with one reason, so model.attention = cudnn falls back to the kernels
 * with that line and callers need no #if. */
#include "model/cuda/attention_cudnn.h"

static int without_cudnn(kpo_error *err)
{
    return error_set(err, "kpo was built without cuDNN (meson option cudnn disabled, or no "
                          "cuDNN headers and library at configure time)");
}

int attention_cudnn_create(attention_cudnn **out, kpo_error *err)
{
    *out = NULL;
    return without_cudnn(err);
}

void attention_cudnn_destroy(attention_cudnn *a) { (void)a; }

size_t attention_cudnn_version(const attention_cudnn *a)
{
    (void)a;
    return 0;
}

int attention_cudnn_set_batch(attention_cudnn *a, const gpu_attention_shape *s,
                              const int64_t *host_seq_offsets, void *stream, kpo_error *err)
{
    (void)a, (void)s, (void)host_seq_offsets, (void)stream;
    return without_cudnn(err);
}

int attention_cudnn_workspace(attention_cudnn *a, const gpu_attention_shape *s, bool backward,
                              size_t *bytes, kpo_error *err)
{
    (void)a, (void)s, (void)backward;
    *bytes = 0;
    return without_cudnn(err);
}

int attention_cudnn_forward(attention_cudnn *a, const gpu_attention_shape *s, const uint16_t *q,
                            const uint16_t *k, const uint16_t *v, uint16_t *out, float *lse,
                            void *workspace, size_t workspace_bytes, void *stream,
                            kpo_error *err)
{
    (void)a, (void)s, (void)q, (void)k, (void)v, (void)out, (void)lse, (void)workspace;
    (void)workspace_bytes, (void)stream;
    return without_cudnn(err);
}

int attention_cudnn_backward(attention_cudnn *a, const gpu_attention_shape *s, const uint16_t *q,
                             const uint16_t *k, const uint16_t *v, const uint16_t *out,
                             const uint16_t *dout, const float *lse, uint16_t *dq, uint16_t *dk,
                             uint16_t *dv, void *workspace, size_t workspace_bytes, void *stream,
                             kpo_error *err)
{
    (void)a, (void)s, (void)q, (void)k, (void)v, (void)out, (void)dout, (void)lse, (void)dq;
    (void)dk, (void)dv, (void)workspace, (void)workspace_bytes, (void)stream;
    return without_cudnn(err);
}
