/* Causal GQA attention on tensor cores (nvcuda::wmma, bf16 16x16x16
 * fragments, fp32 accumulators), FlashAttention-2 style.
 *
 * Tiles. One block owns TILE rows (queries in the forward and dQ kernels,
 * keys in the dK/dV kernel), TILE/16 warps, each warp its own 16 rows, so
 * warps only meet at the shared K/V (or Q/dO) tiles, guarded by
 * __syncthreads; everything a warp computes for its rows (scores, P, the
 * running output) lives in its own slice of shared memory, guarded by
 * __syncwarp. TILE is 64 for head_dim <= 128 and 32 above (shared memory:
 * the dK/dV kernel at head_dim 128 uses 187 KiB of the 227 KiB a block may
 * have). head_dim is a template constant for Qwen3's 128 (fully unrolled)
 * and a runtime value otherwise (any multiple of 16 up to 256).
 *
 * Shared-memory rows are padded (bf16 rows by 8 elements, fp32 rows by 4) to
 * spread banks; every fragment pointer stays 32-byte aligned because
 * fragments start at rows and columns that are multiples of 16.
 *
 * Softmax statistics are fp32 in base 2: scores are scaled by
 * log2(e)/sqrt(head_dim) so exp2f does the exponentials; lse is converted
 * back to natural log when stored. Within a warp, lanes 2r and 2r+1 share
 * row r of the warp's 16 (half the columns each), so the running max and
 * sum of a row sit in those two lanes' registers across key tiles.
 *
 * Ragged packs: grid z is the sequence, y the head, x the tile; a block
 * whose tile starts past its sequence's end returns at once. Causal tiles
 * near the end of a sequence do the most work, so the forward and dQ
 * kernels hand out the last tiles first.
 *
 * Backward (deterministic, no atomics): delta[t, h] = rowsum(dO * O) into
 * the workspace; dK/dV: one block per (key tile, kv head, sequence) loops
 * over the query heads of its group and the query tiles that see the key
 * tile; dQ: one block per (query tile, head, sequence) loops over key tiles.
 * Every sum runs in a fixed order, so results repeat bit for bit.
 *
 * Decode: one block of DECODE_WARPS warps per (query, head); warp w takes
 * cache positions w, w + DECODE_WARPS, ... with its own online softmax (one
 * warp-reduced dot product per key), and the warps merge in shared memory. */
#include <math.h>
#include <mma.h>

/* kernels_common.cuh first: it includes the C headers (core/error.h) under
 * extern "C", which the attention header, included after, relies on. */
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/kernels_alias.h"
#include "model/cuda/kernels_attention.h"

using namespace nvcuda;

enum { ATT_PAD_BF16 = 8, ATT_PAD_F32 = 4, ATT_MAX_HEAD_DIM = 256, DECODE_WARPS = 8 };

#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.69314718055994531f

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> frag_b_row;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> frag_b_col;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_acc;

/* ---------------------------------------------------------------- tiles */

/* Copies rows [0, valid) of a global [rows, stride] bf16 matrix (d
 * contiguous elements per row) into a shared [TILE, ld] tile and zeroes
 * rows [valid, TILE), 16 bytes at a time by the whole block. */
template <int TILE>
static __device__ void tile_load(bf16 *dst, int ld, const bf16 *src, int64_t stride, int valid,
                                 int d)
{
    const int chunks = d / 8; /* 8 bf16 = 16 bytes */
    for (int i = threadIdx.x; i < TILE * chunks; i += blockDim.x) {
        const int r = i / chunks, c = i % chunks;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (r < valid)
            x = *reinterpret_cast<const uint4 *>(src + r * stride + c * 8);
        *reinterpret_cast<uint4 *>(dst + r * ld + c * 8) = x;
    }
}

/* Writes rows [0, valid) of a shared fp32 [TILE, ld] tile to global bf16
 * rows (consecutive threads take consecutive columns: coalesced). */
template <int TILE>
static __device__ void tile_store_bf16(bf16 *dst, int64_t stride, const float *src, int ld,
                                       int valid, int d)
{
    for (int i = threadIdx.x; i < TILE * d; i += blockDim.x) {
        const int r = i / d, c = i % d;
        if (r < valid)
            dst[r * stride + c] = __float2bfloat16(src[r * ld + c]);
    }
}

template <int TILE>
static __device__ void tile_zero(float *dst, int n)
{
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        dst[i] = 0.0f;
}

/* out[16, 16*TILE/16] (fp32, ldo) = A[16, d] B^T where B is [TILE, d]: one
 * warp's scores of its 16 rows against a tile's TILE rows. */
template <int TILE>
static __device__ void warp_product_abt(float *out, int ldo, const bf16 *a, int lda,
                                        const bf16 *b, int ldb, int d)
{
    for (int nb = 0; nb < TILE; nb += 16) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kk = 0; kk < d; kk += 16) {
            frag_a fa;
            frag_b_col fb; /* B^T's element (k, n) is b[n][k]: col-major view of b */
            wmma::load_matrix_sync(fa, a + kk, lda);
            wmma::load_matrix_sync(fb, b + nb * ldb + kk, ldb);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(out + nb, acc, ldo, wmma::mem_row_major);
    }
}

/* acc[16, d] (fp32 in shared memory, ldc) += A[16, TILE] B where B is
 * [TILE, d] row-major: P V, dS K and the like. The accumulator round-trips
 * through shared memory because the online softmax rescales it by rows,
 * which a fragment's opaque layout does not allow. */
template <int TILE>
static __device__ void warp_product_acc_ab(float *acc, int ldc, const bf16 *a, int lda,
                                           const bf16 *b, int ldb, int d)
{
    for (int cb = 0; cb < d; cb += 16) {
        frag_acc c;
        wmma::load_matrix_sync(c, acc + cb, ldc, wmma::mem_row_major);
        for (int kk = 0; kk < TILE; kk += 16) {
            frag_a fa;
            frag_b_row fb;
            wmma::load_matrix_sync(fa, a + kk, lda);
            wmma::load_matrix_sync(fb, b + kk * ldb + cb, ldb);
            wmma::mma_sync(c, fa, fb, c);
        }
        wmma::store_matrix_sync(acc + cb, c, ldc, wmma::mem_row_major);
    }
}

/* The shared-memory leading dimensions of a block for head_dim d. */
struct att_ld {
    int h; /* bf16 [TILE, d] tiles */
    int f; /* fp32 [TILE, d] accumulators */
    int s; /* fp32 [TILE, TILE] scores */
    int p; /* bf16 [TILE, TILE] probabilities */
};

static __host__ __device__ inline att_ld att_ld_make(int tile, int d)
{
    att_ld ld;
    ld.h = d + ATT_PAD_BF16;
    ld.f = d + ATT_PAD_F32;
    ld.s = tile + ATT_PAD_F32;
    ld.p = tile + ATT_PAD_BF16;
    return ld;
}

/* Shared bytes per kernel: the carving order in each kernel matches. */
static size_t att_smem_forward(int tile, int d)
{
    const att_ld ld = att_ld_make(tile, d);
    return (size_t)tile * (3 * ld.h * 2 + ld.f * 4 + ld.s * 4 + ld.p * 2);
}

static size_t att_smem_dkdv(int tile, int d)
{
    const att_ld ld = att_ld_make(tile, d);
    return (size_t)tile * (4 * ld.h * 2 + 2 * ld.f * 4 + 2 * ld.s * 4 + 2 * ld.p * 2 + 2 * 4);
}

static size_t att_smem_dq(int tile, int d)
{
    const att_ld ld = att_ld_make(tile, d);
    return (size_t)tile * (4 * ld.h * 2 + ld.f * 4 + 2 * ld.s * 4 + ld.p * 2);
}

/* ---------------------------------------------------------------- forward */

/* q, out [tokens, heads, d]; k, v [tokens, kv_heads, d]; lse [tokens, heads].
 * Grid (query tiles, heads, sequences), TILE * 2 threads. */
template <int TILE, int DFIX>
static __global__ void __launch_bounds__(TILE * 2)
    attention_forward_kernel(const int64_t *seq_offsets, int heads, int kv_heads, int d_runtime,
                             float scale_log2, const bf16 *q, const bf16 *k, const bf16 *v,
                             bf16 *out, float *lse)
{
    const int d = DFIX ? DFIX : d_runtime;
    const int h = blockIdx.y, g = h / (heads / kv_heads);
    const int64_t start = seq_offsets[blockIdx.z];
    const int len = (int)(seq_offsets[blockIdx.z + 1] - start);
    const int m0 = (int)(gridDim.x - 1 - blockIdx.x) * TILE; /* longest rows first */
    if (m0 >= len)
        return;
    const att_ld ld = att_ld_make(TILE, d);
    extern __shared__ __align__(128) unsigned char att_smem[];
    bf16 *sq = reinterpret_cast<bf16 *>(att_smem); /* [TILE, ld.h] */
    bf16 *sk = sq + TILE * ld.h;                   /* [TILE, ld.h] */
    bf16 *sv = sk + TILE * ld.h;                   /* [TILE, ld.h] */
    float *so = reinterpret_cast<float *>(sv + TILE * ld.h); /* [TILE, ld.f] running output */
    float *ss = so + TILE * ld.f;                            /* [TILE, ld.s] scores */
    bf16 *sp = reinterpret_cast<bf16 *>(ss + TILE * ld.s);   /* [TILE, ld.p] probabilities */

    const int64_t q_stride = (int64_t)heads * d, kv_stride = (int64_t)kv_heads * d;
    tile_load<TILE>(sq, ld.h, q + ((start + m0) * heads + h) * d, q_stride, min(TILE, len - m0), d);
    tile_zero<TILE>(so, TILE * ld.f);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r0 = warp * 16, rr = lane / 2, half = lane % 2;
    const int qi = m0 + r0 + rr; /* this lane's query row, within the sequence */
    float *srow = ss + (r0 + rr) * ld.s, *orow = so + (r0 + rr) * ld.f;
    bf16 *prow = sp + (r0 + rr) * ld.p;
    float m_run = -INFINITY, l_run = 0.0f;

    const int n_end = min(m0 + TILE, len); /* causal: keys up to the tile's last query */
    for (int n0 = 0; n0 < n_end; n0 += TILE) {
        __syncthreads(); /* every warp is done with the previous K/V tile */
        const int64_t kv_row0 = (start + n0) * kv_heads + g;
        tile_load<TILE>(sk, ld.h, k + kv_row0 * d, kv_stride, min(TILE, len - n0), d);
        tile_load<TILE>(sv, ld.h, v + kv_row0 * d, kv_stride, min(TILE, len - n0), d);
        __syncthreads();

        warp_product_abt<TILE>(ss + r0 * ld.s, ld.s, sq + r0 * ld.h, ld.h, sk, ld.h, d);
        __syncwarp();

        /* Online softmax of row rr over this tile's columns (half each). */
        float m_tile = -INFINITY;
        for (int c = half * (TILE / 2); c < (half + 1) * (TILE / 2); c++) {
            const int key = n0 + c;
            const float x = (key < len && key <= qi) ? srow[c] * scale_log2 : -INFINITY;
            srow[c] = x;
            m_tile = fmaxf(m_tile, x);
        }
        m_tile = fmaxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 1));
        const float m_new = fmaxf(m_run, m_tile);
        /* Key 0 is in the first tile and visible to every row, so m_new is
         * finite from the first tile on; the guard only avoids inf - inf. */
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = exp2f(m_run - m_use);
        float sum = 0.0f;
        for (int c = half * (TILE / 2); c < (half + 1) * (TILE / 2); c++) {
            const float p = exp2f(srow[c] - m_use);
            prow[c] = __float2bfloat16(p);
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l_run = l_run * alpha + sum;
        m_run = m_new;
        for (int c = half * (d / 2); c < (half + 1) * (d / 2); c++)
            orow[c] *= alpha;
        __syncwarp();

        warp_product_acc_ab<TILE>(so + r0 * ld.f, ld.f, sp + r0 * ld.p, ld.p, sv, ld.h, d);
        __syncwarp();
    }

    if (qi < len) {
        const float inv = 1.0f / l_run;
        bf16 *orow_g = out + ((start + qi) * heads + h) * d;
        for (int c = half * (d / 2); c < (half + 1) * (d / 2); c++)
            orow_g[c] = __float2bfloat16(orow[c] * inv);
        if (half == 0)
            lse[(start + qi) * heads + h] = (m_run + log2f(l_run)) * ATT_LN2;
    }
}

/* ---------------------------------------------------------------- backward */

/* delta [rows] fp32 = rowsum(dout * out) over rows of d elements. One warp
 * per row. */
static __global__ void attention_delta_kernel(int64_t rows, int d, const bf16 *out,
                                              const bf16 *dout, float *delta)
{
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    const int lane = threadIdx.x % 32;
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps) {
        float acc = 0.0f;
        for (int c = lane; c < d; c += 32)
            acc += __bfloat162float(out[r * d + c]) * __bfloat162float(dout[r * d + c]);
        acc = kernels_warp_sum(acc);
        if (lane == 0)
            delta[r] = acc;
    }
}

/* dk, dv [tokens, kv_heads, d] for one key tile of one kv head: rows are
 * keys, columns queries (S^T, P^T, dP^T, dS^T). Grid (key tiles, kv heads,
 * sequences), TILE * 2 threads. */
template <int TILE, int DFIX>
static __global__ void __launch_bounds__(TILE * 2)
    attention_dkdv_kernel(const int64_t *seq_offsets, int heads, int kv_heads, int d_runtime,
                          float scale, const bf16 *q, const bf16 *k, const bf16 *v,
                          const bf16 *dout, const float *lse, const float *delta, bf16 *dk,
                          bf16 *dv)
{
    const int d = DFIX ? DFIX : d_runtime;
    const int g = blockIdx.y, group = heads / kv_heads;
    const int64_t start = seq_offsets[blockIdx.z];
    const int len = (int)(seq_offsets[blockIdx.z + 1] - start);
    const int n0 = (int)blockIdx.x * TILE; /* first key of the tile */
    if (n0 >= len)
        return;
    const float scale_log2 = scale * ATT_LOG2E;
    const att_ld ld = att_ld_make(TILE, d);
    extern __shared__ __align__(128) unsigned char att_smem[];
    bf16 *sk = reinterpret_cast<bf16 *>(att_smem); /* [TILE, ld.h] keys */
    bf16 *sv = sk + TILE * ld.h;                   /* [TILE, ld.h] values */
    bf16 *sq = sv + TILE * ld.h;                   /* [TILE, ld.h] queries */
    bf16 *sdo = sq + TILE * ld.h;                  /* [TILE, ld.h] dO */
    float *sdk = reinterpret_cast<float *>(sdo + TILE * ld.h); /* [TILE, ld.f] */
    float *sdv = sdk + TILE * ld.f;                            /* [TILE, ld.f] */
    float *ss = sdv + TILE * ld.f;                             /* [TILE, ld.s] S^T */
    float *sdp = ss + TILE * ld.s;                             /* [TILE, ld.s] dP^T */
    bf16 *sp = reinterpret_cast<bf16 *>(sdp + TILE * ld.s);    /* [TILE, ld.p] P^T */
    bf16 *sds = sp + TILE * ld.p;                              /* [TILE, ld.p] dS^T */
    float *slse = reinterpret_cast<float *>(sds + TILE * ld.p); /* [TILE] lse * log2(e) */
    float *sdelta = slse + TILE;                                /* [TILE] */

    const int64_t q_stride = (int64_t)heads * d, kv_stride = (int64_t)kv_heads * d;
    const int n_valid = min(TILE, len - n0);
    tile_load<TILE>(sk, ld.h, k + ((start + n0) * kv_heads + g) * d, kv_stride, n_valid, d);
    tile_load<TILE>(sv, ld.h, v + ((start + n0) * kv_heads + g) * d, kv_stride, n_valid, d);
    tile_zero<TILE>(sdk, TILE * ld.f);
    tile_zero<TILE>(sdv, TILE * ld.f);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r0 = warp * 16, rr = lane / 2, half = lane % 2;
    const int kj = n0 + r0 + rr; /* this lane's key row, within the sequence */
    float *srow = ss + (r0 + rr) * ld.s, *dprow = sdp + (r0 + rr) * ld.s;
    bf16 *prow = sp + (r0 + rr) * ld.p, *dsrow = sds + (r0 + rr) * ld.p;

    for (int hq = g * group; hq < (g + 1) * group; hq++) {
        /* Queries before the key tile cannot see it (causal). */
        for (int m0 = n0; m0 < len; m0 += TILE) {
            __syncthreads(); /* every warp is done with the previous Q/dO tile */
            const int m_valid = min(TILE, len - m0);
            const int64_t q_row0 = (start + m0) * heads + hq;
            tile_load<TILE>(sq, ld.h, q + q_row0 * d, q_stride, m_valid, d);
            tile_load<TILE>(sdo, ld.h, dout + q_row0 * d, q_stride, m_valid, d);
            for (int i = threadIdx.x; i < TILE; i += blockDim.x) {
                const bool ok = i < m_valid;
                slse[i] = ok ? lse[(start + m0 + i) * heads + hq] * ATT_LOG2E : 0.0f;
                sdelta[i] = ok ? delta[(start + m0 + i) * heads + hq] : 0.0f;
            }
            __syncthreads();

            warp_product_abt<TILE>(ss + r0 * ld.s, ld.s, sk + r0 * ld.h, ld.h, sq, ld.h, d);
            warp_product_abt<TILE>(sdp + r0 * ld.s, ld.s, sv + r0 * ld.h, ld.h, sdo, ld.h, d);
            __syncwarp();
            for (int c = half * (TILE / 2); c < (half + 1) * (TILE / 2); c++) {
                const int qi = m0 + c;
                const bool ok = qi < len && kj < len && qi >= kj;
                const float p = ok ? exp2f(srow[c] * scale_log2 - slse[c]) : 0.0f;
                prow[c] = __float2bfloat16(p);
                dsrow[c] = __float2bfloat16(p * (dprow[c] - sdelta[c]) * scale);
            }
            __syncwarp();
            warp_product_acc_ab<TILE>(sdv + r0 * ld.f, ld.f, sp + r0 * ld.p, ld.p, sdo, ld.h, d);
            warp_product_acc_ab<TILE>(sdk + r0 * ld.f, ld.f, sds + r0 * ld.p, ld.p, sq, ld.h, d);
        }
    }
    __syncthreads(); /* the store below reads other warps' rows */
    const int64_t row0 = (start + n0) * kv_heads + g;
    tile_store_bf16<TILE>(dk + row0 * d, kv_stride, sdk, ld.f, n_valid, d);
    tile_store_bf16<TILE>(dv + row0 * d, kv_stride, sdv, ld.f, n_valid, d);
}

/* dq [tokens, heads, d] for one query tile of one head: loops over the key
 * tiles it sees. Grid (query tiles, heads, sequences), TILE * 2 threads. */
template <int TILE, int DFIX>
static __global__ void __launch_bounds__(TILE * 2)
    attention_dq_kernel(const int64_t *seq_offsets, int heads, int kv_heads, int d_runtime,
                        float scale, const bf16 *q, const bf16 *k, const bf16 *v,
                        const bf16 *dout, const float *lse, const float *delta, bf16 *dq)
{
    const int d = DFIX ? DFIX : d_runtime;
    const int h = blockIdx.y, g = h / (heads / kv_heads);
    const int64_t start = seq_offsets[blockIdx.z];
    const int len = (int)(seq_offsets[blockIdx.z + 1] - start);
    const int m0 = (int)(gridDim.x - 1 - blockIdx.x) * TILE;
    if (m0 >= len)
        return;
    const float scale_log2 = scale * ATT_LOG2E;
    const att_ld ld = att_ld_make(TILE, d);
    extern __shared__ __align__(128) unsigned char att_smem[];
    bf16 *sq = reinterpret_cast<bf16 *>(att_smem); /* [TILE, ld.h] */
    bf16 *sdo = sq + TILE * ld.h;                  /* [TILE, ld.h] */
    bf16 *sk = sdo + TILE * ld.h;                  /* [TILE, ld.h] */
    bf16 *sv = sk + TILE * ld.h;                   /* [TILE, ld.h] */
    float *sdq = reinterpret_cast<float *>(sv + TILE * ld.h); /* [TILE, ld.f] */
    float *ss = sdq + TILE * ld.f;                            /* [TILE, ld.s] S */
    float *sdp = ss + TILE * ld.s;                            /* [TILE, ld.s] dP */
    bf16 *sds = reinterpret_cast<bf16 *>(sdp + TILE * ld.s);  /* [TILE, ld.p] dS */

    const int64_t q_stride = (int64_t)heads * d, kv_stride = (int64_t)kv_heads * d;
    const int m_valid = min(TILE, len - m0);
    const int64_t q_row0 = (start + m0) * heads + h;
    tile_load<TILE>(sq, ld.h, q + q_row0 * d, q_stride, m_valid, d);
    tile_load<TILE>(sdo, ld.h, dout + q_row0 * d, q_stride, m_valid, d);
    tile_zero<TILE>(sdq, TILE * ld.f);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r0 = warp * 16, rr = lane / 2, half = lane % 2;
    const int qi = m0 + r0 + rr;
    const float lse2 = qi < len ? lse[(start + qi) * heads + h] * ATT_LOG2E : 0.0f;
    const float dl = qi < len ? delta[(start + qi) * heads + h] : 0.0f;
    float *srow = ss + (r0 + rr) * ld.s, *dprow = sdp + (r0 + rr) * ld.s;
    bf16 *dsrow = sds + (r0 + rr) * ld.p;

    const int n_end = min(m0 + TILE, len);
    for (int n0 = 0; n0 < n_end; n0 += TILE) {
        __syncthreads();
        const int64_t kv_row0 = (start + n0) * kv_heads + g;
        tile_load<TILE>(sk, ld.h, k + kv_row0 * d, kv_stride, min(TILE, len - n0), d);
        tile_load<TILE>(sv, ld.h, v + kv_row0 * d, kv_stride, min(TILE, len - n0), d);
        __syncthreads();

        warp_product_abt<TILE>(ss + r0 * ld.s, ld.s, sq + r0 * ld.h, ld.h, sk, ld.h, d);
        warp_product_abt<TILE>(sdp + r0 * ld.s, ld.s, sdo + r0 * ld.h, ld.h, sv, ld.h, d);
        __syncwarp();
        for (int c = half * (TILE / 2); c < (half + 1) * (TILE / 2); c++) {
            const int key = n0 + c;
            const bool ok = qi < len && key < len && key <= qi;
            const float p = ok ? exp2f(srow[c] * scale_log2 - lse2) : 0.0f;
            dsrow[c] = __float2bfloat16(p * (dprow[c] - dl) * scale);
        }
        __syncwarp();
        warp_product_acc_ab<TILE>(sdq + r0 * ld.f, ld.f, sds + r0 * ld.p, ld.p, sk, ld.h, d);
    }
    __syncthreads();
    tile_store_bf16<TILE>(dq + q_row0 * d, q_stride, sdq, ld.f, m_valid, d);
}

/* ---------------------------------------------------------------- decode */


/* Copies query row n's k and v ([kv_heads, d] each) to the cache at (slot,
 * position). One block per new token. Rows whose slot or position falls
 * outside the cache are skipped (the host cannot see device arrays; the
 * decode kernel writes NaN for such queries, so the error shows). */
static __global__ void kv_cache_write_kernel(int64_t n_seqs, const int64_t *query_offsets,
                                             const int64_t *slots, const int64_t *start_positions,
                                             int64_t n_slots, int64_t max_len, int row_chunks,
                                             const uint4 *k_new, const uint4 *v_new,
                                             uint4 *k_cache, uint4 *v_cache)
{
    const int64_t n = blockIdx.x;
    const int64_t i = kernels_find_seq(query_offsets, n_seqs, n);
    const int64_t slot = slots[i], pos = start_positions[i] + (n - query_offsets[i]);
    if (slot < 0 || slot >= n_slots || pos < 0 || pos >= max_len)
        return;
    const int64_t dst = (slot * max_len + pos) * row_chunks, src = n * row_chunks;
    for (int c = threadIdx.x; c < row_chunks; c += blockDim.x) {
        k_cache[dst + c] = k_new[src + c];
        v_cache[dst + c] = v_new[src + c];
    }
}

/* out [n_queries, heads, d] for query blockIdx.x, head blockIdx.y, from the
 * cache [n_slots, max_len, kv_heads, d]. DECODE_WARPS * 32 threads. */
static __global__ void __launch_bounds__(DECODE_WARPS * 32)
    attention_decode_kernel(int64_t n_seqs, const int64_t *query_offsets, const int64_t *slots,
                            const int64_t *start_positions, int64_t n_slots, int64_t max_len,
                            int heads, int kv_heads, int d, float scale, const bf16 *q,
                            const bf16 *k_cache, const bf16 *v_cache, bf16 *out)
{
    enum { PER_LANE = ATT_MAX_HEAD_DIM / 32 };
    __shared__ float sm[DECODE_WARPS], sl[DECODE_WARPS];
    __shared__ float sacc[DECODE_WARPS][ATT_MAX_HEAD_DIM];
    const int64_t n = blockIdx.x;
    const int h = blockIdx.y, g = h / (heads / kv_heads);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t i = kernels_find_seq(query_offsets, n_seqs, n);
    const int64_t slot = slots[i], pos = start_positions[i] + (n - query_offsets[i]);
    bf16 *orow = out + (n * heads + h) * d;
    if (slot < 0 || slot >= n_slots || pos < 0 || pos >= max_len) {
        for (int c = threadIdx.x; c < d; c += blockDim.x)
            orow[c] = __float2bfloat16(NAN); /* a bad slot or position must not pass silently */
        return;
    }
    const bf16 *qrow = q + (n * heads + h) * d;
    const int64_t kv_stride = (int64_t)kv_heads * d;
    const bf16 *kbase = k_cache + (slot * max_len * kv_heads + g) * d;
    const bf16 *vbase = v_cache + (slot * max_len * kv_heads + g) * d;
    float qv[PER_LANE], acc[PER_LANE];
#pragma unroll
    for (int u = 0; u < PER_LANE; u++) {
        const int c = lane + 32 * u;
        qv[u] = c < d ? __bfloat162float(qrow[c]) * scale : 0.0f;
        acc[u] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = warp; j <= pos; j += DECODE_WARPS) {
        const bf16 *krow = kbase + j * kv_stride, *vrow = vbase + j * kv_stride;
        float part = 0.0f;
#pragma unroll
        for (int u = 0; u < PER_LANE; u++) {
            const int c = lane + 32 * u;
            if (c < d)
                part += qv[u] * __bfloat162float(krow[c]);
        }
        const float s = kernels_warp_sum(part);
        const float m_new = fmaxf(m, s);
        const float alpha = expf(m - m_new), p = expf(s - m_new); /* m = -inf: alpha 0 */
        l = l * alpha + p;
#pragma unroll
        for (int u = 0; u < PER_LANE; u++) {
            const int c = lane + 32 * u;
            acc[u] = acc[u] * alpha + (c < d ? p * __bfloat162float(vrow[c]) : 0.0f);
        }
        m = m_new;
    }
    if (lane == 0)
        sm[warp] = m, sl[warp] = l;
#pragma unroll
    for (int u = 0; u < PER_LANE; u++)
        sacc[warp][lane + 32 * u] = acc[u];
    __syncthreads();
    /* Merge: a warp that saw no key has m = -inf and weight 0; warp 0
     * always sees key 0, so mx is finite. */
    float mx = -INFINITY;
    for (int w = 0; w < DECODE_WARPS; w++)
        mx = fmaxf(mx, sm[w]);
    float total = 0.0f;
    for (int w = 0; w < DECODE_WARPS; w++)
        total += sl[w] * expf(sm[w] - mx);
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < DECODE_WARPS; w++)
            o += sacc[w][c] * expf(sm[w] - mx);
        orow[c] = __float2bfloat16(o / total);
    }
}

/* ---------------------------------------------------------------- host */

static int att_check_head_config(const char *what, int heads, int kv_heads, int head_dim,
                                 kpo_error *err)
{
    if (head_dim < 16 || head_dim > ATT_MAX_HEAD_DIM || head_dim % 16 != 0)
        return error_set(err, "%s: head_dim %d unsupported (must be a multiple of 16 in [16, %d])",
                         what, head_dim, (int)ATT_MAX_HEAD_DIM);
    if (heads < 1 || kv_heads < 1 || heads > 65535)
        return error_set(err, "%s: heads %d and kv_heads %d must be in [1, 65535]", what, heads,
                         kv_heads);
    if (heads % kv_heads != 0)
        return error_set(err, "%s: heads %d is not a multiple of kv_heads %d (GQA needs an "
                              "integer group size)", what, heads, kv_heads);
    return KPO_OK;
}

extern "C" int gpu_attention_check_shape(const gpu_attention_shape *s, const char *what,
                                         kpo_error *err)
{
    if (!s)
        return error_set(err, "%s: no shape", what);
    if (s->n_tokens < 0)
        return error_set(err, "%s: n_tokens %lld is negative", what, (long long)s->n_tokens);
    if (att_check_head_config(what, s->heads, s->kv_heads, s->head_dim, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_tokens == 0)
        return KPO_OK;
    if (s->n_seqs < 1 || s->n_seqs > 65535) /* grid z */
        return error_set(err, "%s: n_seqs %lld must be in [1, 65535] for %lld tokens", what,
                         (long long)s->n_seqs, (long long)s->n_tokens);
    /* seq_offsets is not checked here: callers size workspaces and probe
     * head configurations with shapes that have none (model_cuda.c). The
     * entry points check it with the tensor pointers. */
    if (s->max_seq_len < 1 || s->max_seq_len > s->n_tokens || s->max_seq_len > INT32_MAX)
        return error_set(err, "%s: max_seq_len %lld must be in [1, n_tokens %lld]", what,
                         (long long)s->max_seq_len, (long long)s->n_tokens);
    return KPO_OK;
}

/* Every tensor is read 16 bytes at a time: bases must be 16-byte aligned
 * (rows are head_dim * 2 = a multiple of 32 bytes apart). */
static int att_check_pointers(const char *what, const void *const *p, const char *const *names,
                              int n, kpo_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!p[i])
            return error_set(err, "%s: %s is NULL", what, names[i]);
        if ((uintptr_t)p[i] % 16 != 0)
            return error_set(err, "%s: %s is not 16-byte aligned", what, names[i]);
    }
    return KPO_OK;
}

extern "C" int gpu_attention_check_call(const gpu_attention_shape *s, const char *what,
                                        const void *const *ptrs, const char *const *names, int n,
                                        kpo_error *err)
{
    if (gpu_attention_check_shape(s, what, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_tokens == 0)
        return KPO_OK;
    if (!s->seq_offsets)
        return error_set(err, "%s: seq_offsets is NULL", what);
    return att_check_pointers(what, ptrs, names, n, err);
}

static int att_tile(int head_dim) { return head_dim <= 128 ? 64 : 32; }

/* Raises a kernel's dynamic shared-memory cap to what this launch needs
 * (above 48 KiB needs the opt-in). */
template <typename K>
static int att_allow_smem(K kernel, size_t bytes, const char *what, kpo_error *err)
{
    return cuda_check(cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel),
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes),
                      what, err);
}

static dim3 att_grid(const gpu_attention_shape *s, int tile, int per_head)
{
    return dim3((unsigned)((s->max_seq_len + tile - 1) / tile), (unsigned)per_head,
                (unsigned)s->n_seqs);
}

template <int TILE, int DFIX>
static int att_launch_forward(const gpu_attention_shape *s, const bf16 *q, const bf16 *k,
                              const bf16 *v, bf16 *out, float *lse, cudaStream_t stream,
                              kpo_error *err)
{
    const size_t smem = att_smem_forward(TILE, s->head_dim);
    auto kernel = attention_forward_kernel<TILE, DFIX>;
    if (att_allow_smem(kernel, smem, "gpu_attention_forward: shared memory", err) != KPO_OK)
        return KPO_ERR;
    const float scale_log2 = ATT_LOG2E / sqrtf((float)s->head_dim);
    kernel<<<att_grid(s, TILE, s->heads), TILE * 2, smem, stream>>>(
        s->seq_offsets, s->heads, s->kv_heads, s->head_dim, scale_log2, q, k, v, out, lse);
    return kernels_launch_check("gpu_attention_forward", err);
}

extern "C" int gpu_attention_forward(const gpu_attention_shape *s, const uint16_t *q,
                                     const uint16_t *k, const uint16_t *v, uint16_t *out,
                                     float *lse, void *stream, kpo_error *err)
{
    const void *ptrs[] = {q, k, v, out, lse};
    const char *names[] = {"q", "k", "v", "out", "lse"};
    if (gpu_attention_check_call(s, "gpu_attention_forward", ptrs, names, 5, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_tokens == 0)
        return KPO_OK;
    cudaStream_t st = (cudaStream_t)stream;
    if (s->head_dim == 128)
        return att_launch_forward<64, 128>(s, kernels_bf16(q), kernels_bf16(k), kernels_bf16(v),
                                           kernels_bf16(out), lse, st, err);
    if (att_tile(s->head_dim) == 64)
        return att_launch_forward<64, 0>(s, kernels_bf16(q), kernels_bf16(k), kernels_bf16(v),
                                         kernels_bf16(out), lse, st, err);
    return att_launch_forward<32, 0>(s, kernels_bf16(q), kernels_bf16(k), kernels_bf16(v),
                                     kernels_bf16(out), lse, st, err);
}

extern "C" size_t gpu_attention_backward_workspace(const gpu_attention_shape *s)
{
    if (gpu_attention_check_shape(s, "gpu_attention_backward_workspace", NULL) != KPO_OK)
        return 0;
    /* delta [n_tokens, heads] fp32, rounded up to 256 bytes */
    const size_t bytes = (size_t)s->n_tokens * (size_t)s->heads * sizeof(float);
    return (bytes + 255) / 256 * 256;
}

template <int TILE, int DFIX>
static int att_launch_backward(const gpu_attention_shape *s, const bf16 *q, const bf16 *k,
                               const bf16 *v, const bf16 *dout, const float *lse,
                               const float *delta, bf16 *dq, bf16 *dk, bf16 *dv,
                               cudaStream_t stream, kpo_error *err)
{
    const float scale = 1.0f / sqrtf((float)s->head_dim);
    const size_t smem_kv = att_smem_dkdv(TILE, s->head_dim), smem_q = att_smem_dq(TILE, s->head_dim);
    auto dkdv = attention_dkdv_kernel<TILE, DFIX>;
    auto dqk = attention_dq_kernel<TILE, DFIX>;
    if (att_allow_smem(dkdv, smem_kv, "gpu_attention_backward: dK/dV shared memory", err) != KPO_OK ||
        att_allow_smem(dqk, smem_q, "gpu_attention_backward: dQ shared memory", err) != KPO_OK)
        return KPO_ERR;
    dkdv<<<att_grid(s, TILE, s->kv_heads), TILE * 2, smem_kv, stream>>>(
        s->seq_offsets, s->heads, s->kv_heads, s->head_dim, scale, q, k, v, dout, lse, delta, dk,
        dv);
    if (kernels_launch_check("gpu_attention_backward: dK/dV", err) != KPO_OK)
        return KPO_ERR;
    dqk<<<att_grid(s, TILE, s->heads), TILE * 2, smem_q, stream>>>(
        s->seq_offsets, s->heads, s->kv_heads, s->head_dim, scale, q, k, v, dout, lse, delta, dq);
    return kernels_launch_check("gpu_attention_backward: dQ", err);
}

extern "C" int gpu_attention_backward(const gpu_attention_shape *s, const uint16_t *q,
                                      const uint16_t *k, const uint16_t *v, const uint16_t *out,
                                      const uint16_t *dout, const float *lse, uint16_t *dq,
                                      uint16_t *dk, uint16_t *dv, void *workspace, void *stream,
                                      kpo_error *err)
{
    const void *ptrs[] = {q, k, v, out, dout, lse, dq, dk, dv, workspace};
    const char *names[] = {"q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv", "workspace"};
    if (gpu_attention_check_call(s, "gpu_attention_backward", ptrs, names, 10, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_tokens == 0)
        return KPO_OK;
    /* No output may overlap an input: dK/dV and dQ run as separate kernels
     * that each read q, k, v, out, dout and the workspace's delta. */
    const size_t qo = (size_t)(s->n_tokens * s->heads * s->head_dim) * 2;
    const size_t kv = (size_t)(s->n_tokens * s->kv_heads * s->head_dim) * 2;
    const kernels_span outs[] = {{"dq", dq, qo}, {"dk", dk, kv}, {"dv", dv, kv}};
    const size_t lse_bytes = (size_t)(s->n_tokens * s->heads) * 4;
    const kernels_span ins[] = {{"q", q, qo},
                                {"k", k, kv},
                                {"v", v, kv},
                                {"out", out, qo},
                                {"dout", dout, qo},
                                {"lse", lse, lse_bytes},
                                {"workspace", workspace, gpu_attention_backward_workspace(s)}};
    if (kernels_check_disjoint("gpu_attention_backward", outs, 3, ins, 7, err) != KPO_OK)
        return KPO_ERR;
    cudaStream_t st = (cudaStream_t)stream;
    float *delta = (float *)workspace; /* [n_tokens, heads] */
    const int64_t rows = s->n_tokens * s->heads;
    const int warps_per_block = KERNELS_THREADS / 32;
    int64_t blocks = (rows + warps_per_block - 1) / warps_per_block;
    const int64_t cap = (int64_t)kernels_sm_count() * 64; /* the kernel strides over rows */
    blocks = blocks > cap ? cap : blocks;
    attention_delta_kernel<<<(unsigned)blocks, KERNELS_THREADS, 0, st>>>(
        rows, s->head_dim, kernels_bf16(out), kernels_bf16(dout), delta);
    if (kernels_launch_check("gpu_attention_backward: delta", err) != KPO_OK)
        return KPO_ERR;
    const bf16 *bq = kernels_bf16(q), *bk = kernels_bf16(k), *bv = kernels_bf16(v);
    const bf16 *bdo = kernels_bf16(dout);
    bf16 *bdq = kernels_bf16(dq), *bdk = kernels_bf16(dk), *bdv = kernels_bf16(dv);
    if (s->head_dim == 128)
        return att_launch_backward<64, 128>(s, bq, bk, bv, bdo, lse, delta, bdq, bdk, bdv, st, err);
    if (att_tile(s->head_dim) == 64)
        return att_launch_backward<64, 0>(s, bq, bk, bv, bdo, lse, delta, bdq, bdk, bdv, st, err);
    return att_launch_backward<32, 0>(s, bq, bk, bv, bdo, lse, delta, bdq, bdk, bdv, st, err);
}

extern "C" int gpu_decode_check_shape(const gpu_decode_shape *s, const char *what, kpo_error *err)
{
    if (!s)
        return error_set(err, "%s: no shape", what);
    if (s->n_queries < 0 || s->n_queries > INT32_MAX)
        return error_set(err, "%s: n_queries %lld must be in [0, 2^31)", what,
                         (long long)s->n_queries);
    if (att_check_head_config(what, s->heads, s->kv_heads, s->head_dim, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_queries == 0)
        return KPO_OK;
    if (s->n_seqs < 1)
        return error_set(err, "%s: n_seqs %lld must be positive for %lld queries", what,
                         (long long)s->n_seqs, (long long)s->n_queries);
    if (!s->query_offsets || !s->slots || !s->start_positions)
        return error_set(err, "%s: query_offsets, slots and start_positions must not be NULL",
                         what);
    if (s->n_slots < 1 || s->max_len < 1)
        return error_set(err, "%s: n_slots %lld and max_len %lld must be positive", what,
                         (long long)s->n_slots, (long long)s->max_len);
    if (s->max_new < 1 || s->max_new > s->n_queries)
        return error_set(err, "%s: max_new %lld must be in [1, n_queries %lld]", what,
                         (long long)s->max_new, (long long)s->n_queries);
    if (s->max_context < 1 || s->max_context > s->max_len)
        return error_set(err, "%s: max_context %lld must be in [1, max_len %lld]", what,
                         (long long)s->max_context, (long long)s->max_len);
    return KPO_OK;
}

extern "C" int gpu_decode_check_call(const gpu_decode_shape *s, const char *what,
                                     const void *const *ptrs, const char *const *names, int n,
                                     kpo_error *err)
{
    if (gpu_decode_check_shape(s, what, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_queries == 0)
        return KPO_OK;
    return att_check_pointers(what, ptrs, names, n, err);
}

extern "C" int gpu_kv_cache_write(const gpu_decode_shape *s, const uint16_t *k_new,
                                  const uint16_t *v_new, uint16_t *k_cache, uint16_t *v_cache,
                                  void *stream, kpo_error *err)
{
    const char *what = "gpu_kv_cache_write";
    const void *ptrs[] = {k_new, v_new, k_cache, v_cache};
    const char *names[] = {"k_new", "v_new", "k_cache", "v_cache"};
    if (gpu_decode_check_call(s, what, ptrs, names, 4, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_queries == 0)
        return KPO_OK;
    const int row_chunks = s->kv_heads * s->head_dim / 8; /* 16-byte chunks per token */
    const int threads = row_chunks < KERNELS_THREADS ? (row_chunks + 31) / 32 * 32 : KERNELS_THREADS;
    kv_cache_write_kernel<<<(unsigned)s->n_queries, threads, 0, (cudaStream_t)stream>>>(
        s->n_seqs, s->query_offsets, s->slots, s->start_positions, s->n_slots, s->max_len,
        row_chunks, (const uint4 *)k_new, (const uint4 *)v_new, (uint4 *)k_cache,
        (uint4 *)v_cache);
    return kernels_launch_check(what, err);
}

extern "C" int gpu_attention_decode(const gpu_decode_shape *s, const uint16_t *q,
                                    const uint16_t *k_cache, const uint16_t *v_cache,
                                    uint16_t *out, void *stream, kpo_error *err)
{
    const char *what = "gpu_attention_decode";
    const void *ptrs[] = {q, k_cache, v_cache, out};
    const char *names[] = {"q", "k_cache", "v_cache", "out"};
    if (gpu_decode_check_call(s, what, ptrs, names, 4, err) != KPO_OK)
        return KPO_ERR;
    if (s->n_queries == 0)
        return KPO_OK;
    const dim3 grid((unsigned)s->n_queries, (unsigned)s->heads);
    attention_decode_kernel<<<grid, DECODE_WARPS * 32, 0, (cudaStream_t)stream>>>(
        s->n_seqs, s->query_offsets, s->slots, s->start_positions, s->n_slots, s->max_len,
        s->heads, s->kv_heads, s->head_dim, 1.0f / sqrtf((float)s->head_dim), kernels_bf16(q),
        kernels_bf16(k_cache), kernels_bf16(v_cache), kernels_bf16(out));
    return kernels_launch_check(what, err);
}
