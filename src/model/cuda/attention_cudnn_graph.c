/* The cuDNN attention graphs (attention_cudnn.h), built from backend
 * descriptors: a builder with a sticky error and one list to free, tensor,
 * pointwise, matmul, reduction and reshape operations, and from them the
 * forward and backward graphs.
 *
 * The graphs are the ones NVIDIA's cudnn-frontend lowers its SDPA nodes to
 * on cuDNN 9.6 .. 9.20 (CompositeSDPANode / CompositeSDPABackwardNode, with
 * its padding-mask and diagonal-band-mask subgraphs): cuDNN recognises that
 * pattern of matmul, pointwise and reduction operations and runs it as one
 * fused flash-attention kernel. Tensors, data types, strides and operation
 * order follow the frontend's lowering exactly, because the backend's
 * pattern matcher is what decides whether an engine exists. The native
 * SDPA_FWD/BWD operation descriptors are not used: the frontend takes them
 * only from 9.13.1 on, and for causal masks only from 9.21. */
#include "model/cuda/attention_cudnn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Building descriptors: a sticky error, one list to free ---- */

void b_init(builder *b, attention_cudnn *a, kpo_error *err)
{
    memset(b, 0, sizeof *b);
    b->a = a;
    b->err = err;
    b->next_virtual = UID_VIRTUAL;
}

void b_free(builder *b)
{
    for (int i = b->n_descs - 1; i >= 0; i--)
        b->a->api.BackendDestroyDescriptor(b->descs[i]);
    free(b->descs);
    b->descs = NULL;
    b->n_descs = 0;
}

void b_fail(builder *b, cudnnStatus_t st, const char *call, const char *what)
{
    if (!b->failed)
        cudnn_error(b->a, st, call, what, b->err);
    b->failed = true;
}

cudnnBackendDescriptor_t b_new(builder *b, cudnnBackendDescriptorType_t type, const char *what)
{
    if (b->failed)
        return NULL;
    if (b->n_descs == b->cap_descs) {
        const int cap = b->cap_descs ? 2 * b->cap_descs : 128;
        cudnnBackendDescriptor_t *d = realloc(b->descs, (size_t)cap * sizeof *d);
        if (!d) {
            error_set(b->err, "cuDNN attention: out of host memory");
            b->failed = true;
            return NULL;
        }
        b->descs = d;
        b->cap_descs = cap;
    }
    cudnnBackendDescriptor_t d = NULL;
    const cudnnStatus_t st = b->a->api.BackendCreateDescriptor(type, &d);
    if (st != CUDNN_STATUS_SUCCESS) {
        b_fail(b, st, "cudnnBackendCreateDescriptor", what);
        return NULL;
    }
    b->descs[b->n_descs++] = d;
    return d;
}

void b_set(builder *b, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
           cudnnBackendAttributeType_t type, int64_t count, const void *value, const char *what,
           const char *attr)
{
    if (b->failed)
        return;
    const cudnnStatus_t st = b->a->api.BackendSetAttribute(d, name, type, count, value);
    if (st != CUDNN_STATUS_SUCCESS) {
        char where[256];
        snprintf(where, sizeof where, "%s: %s", what, attr);
        b_fail(b, st, "cudnnBackendSetAttribute", where);
    }
}

void b_finalize(builder *b, cudnnBackendDescriptor_t d, const char *what)
{
    if (b->failed)
        return;
    const cudnnStatus_t st = b->a->api.BackendFinalize(d);
    if (st != CUDNN_STATUS_SUCCESS)
        b_fail(b, st, "cudnnBackendFinalize", what);
}

enum { T_REAL = 0, T_VIRTUAL = 1, T_BY_VALUE = 2 };

/* A 4-d tensor; real ones are remembered for the variant pack. */
static cudnnBackendDescriptor_t b_tensor(builder *b, const char *what, int64_t uid,
                                         cudnnDataType_t type, const int64_t dims[4],
                                         const int64_t strides[4], int kind,
                                         cudnnBackendDescriptor_t ragged)
{
    cudnnBackendDescriptor_t t = b_new(b, CUDNN_BACKEND_TENSOR_DESCRIPTOR, what);
    const int64_t alignment = 16; /* the frontend's default for every tensor */
    const bool is_virtual = kind == T_VIRTUAL, by_value = kind == T_BY_VALUE;
    SET(b, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, what);
    SET(b, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims, what);
    SET(b, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides, what);
    SET(b, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what);
    SET(b, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, what);
    if (is_virtual)
        SET(b, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, what);
    if (by_value)
        SET(b, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, what);
    if (ragged)
        SET(b, t, CUDNN_ATTR_TENSOR_RAGGED_OFFSET_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ragged,
            what);
    b_finalize(b, t, what);
    if (!b->failed && !is_virtual && b->n_uids < UID_REAL_END)
        b->uids[b->n_uids++] = uid;
    return t;
}

static cudnnBackendDescriptor_t b_virtual(builder *b, cudnnDataType_t type, const int64_t dims[4],
                                          const int64_t strides[4])
{
    return b_tensor(b, "a virtual tensor", b->next_virtual++, type, dims, strides, T_VIRTUAL,
                    NULL);
}

/* A by-value fp32 scalar (its value travels in the variant pack). */
static cudnnBackendDescriptor_t b_scalar(builder *b, const char *what, int64_t uid)
{
    static const int64_t one[4] = {1, 1, 1, 1};
    return b_tensor(b, what, uid, CUDNN_DATA_FLOAT, one, one, T_BY_VALUE, NULL);
}

static void b_push_op(builder *b, cudnnBackendDescriptor_t op, const char *what)
{
    b_finalize(b, op, what);
    if (b->failed)
        return;
    if (b->n_ops == MAX_OPS) {
        error_set(b->err, "cuDNN attention: more than %d operations in one graph", MAX_OPS);
        b->failed = true;
        return;
    }
    b->ops[b->n_ops++] = op;
}

/* y = mode(x[, in_b][, t]); axis >= 0 for GEN_INDEX. */
static void b_pointwise(builder *b, const char *what, cudnnPointwiseMode_t mode,
                        cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                        cudnnBackendDescriptor_t in_b, cudnnBackendDescriptor_t t,
                        cudnnBackendDescriptor_t y, int64_t axis)
{
    cudnnBackendDescriptor_t pw = b_new(b, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, what);
    SET(b, pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, what);
    SET(b, pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, what);
    if (axis >= 0)
        SET(b, pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, what);
    b_finalize(b, pw, what);
    cudnnBackendDescriptor_t op = b_new(b, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, what);
    const float alpha1 = 1.0f, alpha2 = 1.0f;
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
        &pw, what);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, what);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, what);
    if (in_b)
        SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &in_b,
            what);
    if (t)
        SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t,
            what);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &alpha1, what);
    SET(b, op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &alpha2, what);
    b_push_op(b, op, what);
}

/* c = a b (batched over the first two dims, broadcasting kv heads), fp32
 * accumulation; the overrides are the per-sequence lengths. */
static void b_matmul(builder *b, const char *what, cudnnBackendDescriptor_t a_,
                     cudnnBackendDescriptor_t b_, cudnnBackendDescriptor_t c,
                     cudnnBackendDescriptor_t m_over, cudnnBackendDescriptor_t n_over,
                     cudnnBackendDescriptor_t k_over)
{
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t mm = b_new(b, CUDNN_BACKEND_MATMUL_DESCRIPTOR, what);
    SET(b, mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, what);
    b_finalize(b, mm, what);
    cudnnBackendDescriptor_t op = b_new(b, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, what);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a_, what);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b_, what);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, what);
    SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm, what);
    if (m_over)
        SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC,
            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m_over, what);
    if (n_over)
        SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC,
            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n_over, what);
    if (k_over)
        SET(b, op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC,
            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &k_over, what);
    b_push_op(b, op, what);
}

/* y = reduce(x) over the dims where y is 1, fp32. */
static void b_reduce(builder *b, const char *what, cudnnReduceTensorOp_t mode,
                     cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y)
{
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t rd = b_new(b, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, what);
    SET(b, rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp, what);
    SET(b, rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, what);
    b_finalize(b, rd, what);
    cudnnBackendDescriptor_t op = b_new(b, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, what);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, what);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, what);
    SET(b, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, what);
    b_push_op(b, op, what);
}

/* y = x seen with other dims/strides (a transpose, for the backward). */
static void b_reshape(builder *b, const char *what, cudnnBackendDescriptor_t x,
                      cudnnBackendDescriptor_t y)
{
    cudnnBackendDescriptor_t op = b_new(b, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, what);
    SET(b, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, what);
    SET(b, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, what);
    b_push_op(b, op, what);
}

/* ---- The attention graphs ---- */

/* The tensors both graphs start from. Our packed [tokens, heads, d] rows
 * are cuDNN's [b, h, s, d] with strides (s h d, d, h d, 1) and per-sequence
 * ragged offsets in elements; k enters transposed ([b, h, d, s]), as the
 * frontend passes it to the backend. */
typedef struct graph_io {
    cudnnBackendDescriptor_t q, kt, o, stats, seq_q, seq_kv, off_q, off_kv, off_st, scale;
} graph_io;

static void ragged_dims(const gshape *g, int64_t heads, int64_t dims[4], int64_t strides[4])
{
    const int64_t d[4] = {g->B, heads, g->S, g->D};
    const int64_t s[4] = {g->S * heads * g->D, g->D, heads * g->D, 1};
    memcpy(dims, d, sizeof d);
    memcpy(strides, s, sizeof s);
}

/* A [b, heads, s, d] packed bf16 tensor; transposed: [b, heads, d, s]. */
static cudnnBackendDescriptor_t packed(builder *b, const gshape *g, const char *what, int64_t uid,
                                       int64_t heads, bool transposed,
                                       cudnnBackendDescriptor_t off)
{
    int64_t dims[4], strides[4];
    ragged_dims(g, heads, dims, strides);
    if (transposed) {
        const int64_t d = dims[2], s = strides[2];
        dims[2] = dims[3], strides[2] = strides[3];
        dims[3] = d, strides[3] = s;
    }
    return b_tensor(b, what, uid, CUDNN_DATA_BFLOAT16, dims, strides, T_REAL, off);
}

static void graph_inputs(builder *b, const gshape *g, graph_io *io)
{
    const int64_t ones[4] = {1, 1, 1, 1};
    const int64_t off_dims[4] = {g->B + 1, 1, 1, 1}, len_dims[4] = {g->B, 1, 1, 1};
    io->off_q = b_tensor(b, "q offsets", UID_OFF_Q, CUDNN_DATA_INT64, off_dims, ones, T_REAL, NULL);
    io->off_kv = b_tensor(b, "kv offsets", UID_OFF_KV, CUDNN_DATA_INT64, off_dims, ones, T_REAL,
                          NULL);
    io->off_st = b_tensor(b, "stats offsets", UID_OFF_STATS, CUDNN_DATA_INT64, off_dims, ones,
                          T_REAL, NULL);
    io->seq_q = b_tensor(b, "seq_len_q", UID_SEQ_Q, CUDNN_DATA_INT32, len_dims, ones, T_REAL, NULL);
    io->seq_kv = b_tensor(b, "seq_len_kv", UID_SEQ_KV, CUDNN_DATA_INT32, len_dims, ones, T_REAL,
                          NULL);
    io->q = packed(b, g, "Q", UID_Q, g->H, false, io->off_q);
    io->kt = packed(b, g, "K^T", UID_K, g->K, true, io->off_kv);
    io->o = packed(b, g, "O", UID_O, g->H, false, io->off_q);
    /* Statistics [b, h, s, 1] laid out as our lse [tokens, heads]. */
    const int64_t st_dims[4] = {g->B, g->H, g->S, 1}, st_strides[4] = {g->H * g->S, 1, g->H, 1};
    io->stats = b_tensor(b, "Stats", UID_STATS, CUDNN_DATA_FLOAT, st_dims, st_strides, T_REAL,
                         io->off_st);
    io->scale = b_scalar(b, "attn_scale", UID_SCALE);
}

/* A virtual score-shaped [b, h, s, s] tensor. */
static cudnnBackendDescriptor_t scores_like(builder *b, const gshape *g, cudnnDataType_t type)
{
    const int64_t dims[4] = {g->B, g->H, g->S, g->S};
    const int64_t strides[4] = {g->H * g->S * g->S, g->S * g->S, g->S, 1};
    return b_virtual(b, type, dims, strides);
}

/* A virtual per-row [b, h, s, 1] tensor. */
static cudnnBackendDescriptor_t rows_like(builder *b, const gshape *g)
{
    const int64_t dims[4] = {g->B, g->H, g->S, 1}, strides[4] = {g->H * g->S, g->S, 1, 1};
    return b_virtual(b, CUDNN_DATA_FLOAT, dims, strides);
}

/* scale * Q K^T over each sequence's own length. */
static cudnnBackendDescriptor_t scaled_scores(builder *b, const gshape *g, const graph_io *io)
{
    cudnnBackendDescriptor_t s = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_matmul(b, "Q K^T", io->q, io->kt, s, io->seq_q, io->seq_kv, NULL);
    cudnnBackendDescriptor_t scaled = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_pointwise(b, "scale", CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, s, io->scale, NULL, scaled, -1);
    return scaled;
}

/* Scores outside [0, seq_len_q) x [0, seq_len_kv) become -inf. */
static cudnnBackendDescriptor_t padding_mask(builder *b, const gshape *g, const graph_io *io,
                                             cudnnBackendDescriptor_t x, int64_t neg_inf_uid)
{
    cudnnBackendDescriptor_t row = scores_like(b, g, CUDNN_DATA_INT32);
    cudnnBackendDescriptor_t col = scores_like(b, g, CUDNN_DATA_INT32);
    b_pointwise(b, "padding row index", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, x, NULL, NULL,
                row, 2);
    b_pointwise(b, "padding column index", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, x, NULL,
                NULL, col, 3);
    cudnnBackendDescriptor_t row_ok = scores_like(b, g, CUDNN_DATA_BOOLEAN);
    cudnnBackendDescriptor_t col_ok = scores_like(b, g, CUDNN_DATA_BOOLEAN);
    cudnnBackendDescriptor_t ok = scores_like(b, g, CUDNN_DATA_BOOLEAN);
    b_pointwise(b, "row < seq_len_q", CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, row, io->seq_q,
                NULL, row_ok, -1);
    b_pointwise(b, "column < seq_len_kv", CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, col,
                io->seq_kv, NULL, col_ok, -1);
    b_pointwise(b, "padding and", CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, row_ok, col_ok,
                NULL, ok, -1);
    cudnnBackendDescriptor_t neg_inf = b_scalar(b, "padding -inf", neg_inf_uid);
    cudnnBackendDescriptor_t y = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_pointwise(b, "padding select", CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, neg_inf,
                ok, y, -1);
    return y;
}

/* Top-left causal: score (row, col) kept where row >= col, else -inf (the
 * frontend's right-bound-0 diagonal band; index math in fp32 as there). */
static cudnnBackendDescriptor_t causal_mask(builder *b, const gshape *g,
                                            cudnnBackendDescriptor_t x)
{
    cudnnBackendDescriptor_t row = scores_like(b, g, CUDNN_DATA_INT32);
    cudnnBackendDescriptor_t col = scores_like(b, g, CUDNN_DATA_INT32);
    b_pointwise(b, "causal row index", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, x, NULL, NULL,
                row, 2);
    b_pointwise(b, "causal column index", CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, x, NULL,
                NULL, col, 3);
    cudnnBackendDescriptor_t keep = scores_like(b, g, CUDNN_DATA_BOOLEAN);
    b_pointwise(b, "row >= column", CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL,
                keep, -1);
    cudnnBackendDescriptor_t neg_inf = b_scalar(b, "causal -inf", UID_NEG_INF_CAUSAL);
    cudnnBackendDescriptor_t y = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_pointwise(b, "causal select", CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, neg_inf,
                keep, y, -1);
    return y;
}

/* Softmax with its statistics (max + log sum exp, into io->stats), then
 * out = P V. */
static void softmax_pv(builder *b, const gshape *g, const graph_io *io,
                       cudnnBackendDescriptor_t x)
{
    cudnnBackendDescriptor_t max = rows_like(b, g), sum = rows_like(b, g), log_sum = rows_like(b, g);
    cudnnBackendDescriptor_t shifted = scores_like(b, g, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t e = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_reduce(b, "row max", CUDNN_REDUCE_TENSOR_MAX, x, max);
    b_pointwise(b, "x - max", CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, x, max, NULL, shifted, -1);
    b_pointwise(b, "exp", CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, shifted, NULL, NULL, e, -1);
    b_reduce(b, "row sum", CUDNN_REDUCE_TENSOR_ADD, e, sum);
    b_pointwise(b, "log sum", CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, sum, NULL, NULL, log_sum, -1);
    b_pointwise(b, "stats", CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, max, log_sum, NULL, io->stats,
                -1);
    /* P in the I/O type: the P V product's A operand. */
    cudnnBackendDescriptor_t p = scores_like(b, g, CUDNN_DATA_BFLOAT16);
    b_pointwise(b, "softmax", CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, e, sum, NULL, p, -1);
    cudnnBackendDescriptor_t v = packed(b, g, "V", UID_V, g->K, false, io->off_kv);
    b_matmul(b, "P V", p, v, io->o, io->seq_q, NULL, io->seq_kv);
}

void build_forward(builder *b, const gshape *g)
{
    graph_io io;
    graph_inputs(b, g, &io);
    cudnnBackendDescriptor_t x = scaled_scores(b, g, &io);
    x = padding_mask(b, g, &io, x, UID_NEG_INF_PAD);
    x = causal_mask(b, g, x);
    softmax_pv(b, g, &io, x);
}

/* dK or dV: t^T-shaped scores [b, h, s_kv, s_q] times a [b, h, s_q, d]
 * operand; with GQA into a per-query-head tensor in the workspace, then
 * summed over each group (a reduction), as the frontend does. */
static void grad_kv(builder *b, const gshape *g, const graph_io *io,
                    cudnnBackendDescriptor_t scores_t, cudnnBackendDescriptor_t operand,
                    cudnnBackendDescriptor_t out, const char *what, int64_t full_uid)
{
    if (g->H == g->K) {
        b_matmul(b, what, scores_t, operand, out, io->seq_kv, NULL, io->seq_q);
        return;
    }
    /* The kv tensor's strides and offsets scaled by the group size: the
     * backend multiplies the ragged offsets itself. */
    int64_t dims[4], strides[4];
    ragged_dims(g, g->H, dims, strides);
    cudnnBackendDescriptor_t full = b_tensor(b, what, full_uid, CUDNN_DATA_BFLOAT16, dims, strides,
                                             T_REAL, io->off_kv);
    b_matmul(b, what, scores_t, operand, full, io->seq_kv, NULL, io->seq_q);
    b_reduce(b, what, CUDNN_REDUCE_TENSOR_ADD, full, out);
}

/* A virtual transposed-scores [b, h, s_kv, s_q] bf16 view. */
static cudnnBackendDescriptor_t transposed_scores(builder *b, const gshape *g,
                                                  cudnnBackendDescriptor_t x, const char *what)
{
    const int64_t dims[4] = {g->B, g->H, g->S, g->S};
    const int64_t strides[4] = {g->H * g->S * g->S, g->S * g->S, 1, g->S};
    cudnnBackendDescriptor_t t = b_virtual(b, CUDNN_DATA_BFLOAT16, dims, strides);
    b_reshape(b, what, x, t);
    return t;
}

/* rowsum(dO o O) into the softmax-sum buffer (the backward's D term). */
static cudnnBackendDescriptor_t softmax_sum(builder *b, const gshape *g, const graph_io *io,
                                            cudnnBackendDescriptor_t dout)
{
    const int64_t dims[4] = {g->B, g->H, g->S, g->D};
    const int64_t strides[4] = {g->H * g->S * g->D, g->S * g->D, g->H * g->D, 1};
    cudnnBackendDescriptor_t prod = b_virtual(b, CUDNN_DATA_FLOAT, dims, strides);
    b_pointwise(b, "dO * O", CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dout, io->o, NULL, prod, -1);
    cudnnBackendDescriptor_t rows = rows_like(b, g);
    b_reduce(b, "rowsum(dO * O)", CUDNN_REDUCE_TENSOR_ADD, prod, rows);
    const int64_t st_dims[4] = {g->B, g->H, g->S, 1}, st_strides[4] = {g->H * g->S, 1, g->H, 1};
    cudnnBackendDescriptor_t sum = b_tensor(b, "softmax sum", UID_SOFTMAX_SUM, CUDNN_DATA_FLOAT,
                                            st_dims, st_strides, T_REAL, io->off_st);
    cudnnBackendDescriptor_t one = b_scalar(b, "one", UID_ONE);
    b_pointwise(b, "softmax sum * 1", CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, rows, one, NULL, sum,
                -1);
    return sum;
}

/* P = exp(masked scores - stats), recomputed from the forward's stats. */
static cudnnBackendDescriptor_t probabilities(builder *b, const gshape *g, const graph_io *io)
{
    cudnnBackendDescriptor_t x = scaled_scores(b, g, io);
    x = padding_mask(b, g, io, x, UID_NEG_INF_PAD);
    cudnnBackendDescriptor_t centred = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_pointwise(b, "scores - stats", CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, x, io->stats, NULL,
                centred, -1);
    x = centred;
    /* Before 9.10 the padding value must be put back after the stats (the
     * frontend does the same). */
    if (b->a->version < 91000)
        x = padding_mask(b, g, io, x, UID_NEG_INF_PAD2);
    x = causal_mask(b, g, x);
    cudnnBackendDescriptor_t p = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_pointwise(b, "exp", CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, x, NULL, NULL, p, -1);
    return p;
}

/* dS = P o (dP - softmax sum) * scale, with dP = dO V^T. */
static cudnnBackendDescriptor_t score_grad(builder *b, const gshape *g, const graph_io *io,
                                           cudnnBackendDescriptor_t p, cudnnBackendDescriptor_t dout,
                                           cudnnBackendDescriptor_t sum)
{
    cudnnBackendDescriptor_t vt = packed(b, g, "V^T", UID_V, g->K, true, io->off_kv);
    cudnnBackendDescriptor_t dp = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_matmul(b, "dO V^T", dout, vt, dp, io->seq_q, io->seq_kv, NULL);
    cudnnBackendDescriptor_t t1 = scores_like(b, g, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t t2 = scores_like(b, g, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t ds = scores_like(b, g, CUDNN_DATA_FLOAT);
    b_pointwise(b, "dP - softmax sum", CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, dp, sum, NULL, t1, -1);
    b_pointwise(b, "* P", CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, t1, p, NULL, t2, -1);
    b_pointwise(b, "dS scale", CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, t2, io->scale, NULL, ds, -1);
    return ds;
}

/* dQ = dS K into the fp32 accumulator, then converted into dq. */
static void grad_q(builder *b, const gshape *g, const graph_io *io, cudnnBackendDescriptor_t ds)
{
    int64_t dims[4], strides[4];
    ragged_dims(g, g->K, dims, strides);
    /* K back from its transposed view; virtual fp32, as the frontend types it. */
    cudnnBackendDescriptor_t k = b_tensor(b, "K", b->next_virtual++, CUDNN_DATA_FLOAT, dims,
                                          strides, T_VIRTUAL, io->off_kv);
    b_reshape(b, "K from K^T", io->kt, k);
    ragged_dims(g, g->H, dims, strides);
    cudnnBackendDescriptor_t acc = b_tensor(b, "dQ accumulator", UID_DQ_ACCUM, CUDNN_DATA_FLOAT,
                                            dims, strides, T_REAL, io->off_q);
    b_matmul(b, "dS K", ds, k, acc, io->seq_q, NULL, io->seq_kv);
    cudnnBackendDescriptor_t dq = packed(b, g, "dQ", UID_DQ, g->H, false, io->off_q);
    b_pointwise(b, "dQ", CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, acc, NULL, NULL, dq, -1);
}

void build_backward(builder *b, const gshape *g)
{
    graph_io io;
    graph_inputs(b, g, &io);
    cudnnBackendDescriptor_t dout = packed(b, g, "dO", UID_DO, g->H, false, io.off_q);
    cudnnBackendDescriptor_t sum = softmax_sum(b, g, &io, dout);
    cudnnBackendDescriptor_t p = probabilities(b, g, &io);
    cudnnBackendDescriptor_t dv = packed(b, g, "dV", UID_DV, g->K, false, io.off_kv);
    grad_kv(b, g, &io, transposed_scores(b, g, p, "P^T"), dout, dv, "P^T dO", UID_DV_FULL);
    cudnnBackendDescriptor_t ds = score_grad(b, g, &io, p, dout, sum);
    cudnnBackendDescriptor_t dk = packed(b, g, "dK", UID_DK, g->K, false, io.off_kv);
    grad_kv(b, g, &io, transposed_scores(b, g, ds, "dS^T"), io.q, dk, "dS^T Q", UID_DK_FULL);
    grad_q(b, g, &io, ds);
}
