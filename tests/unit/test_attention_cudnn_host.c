/* The host-only logic of cuDNN attention (src/model/cuda/attention_cudnn.h):
 * the plan-cache buckets, the per-batch device arrays (ragged offsets in
 * elements, sequence lengths, padding sequences) and the backward's extra
 * buffers. Runs in every build, without a GPU or cuDNN; in a CUDA build
 * without cuDNN it also checks the stub's one reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kpo_config.h"
#include "model/cuda/attention_cudnn.h"

static void test_bucket_seqs(void **state)
{
    (void)state;
    const int64_t in[] = {1, 2, 3, 4, 5, 8, 9, 33, 100};
    const int64_t want[] = {1, 2, 4, 4, 8, 8, 16, 64, 128};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(attention_cudnn_bucket_seqs(in[i]), want[i]);
}

static void test_bucket_len(void **state)
{
    (void)state;
    const int64_t in[] = {1, 64, 128, 129, 192, 193, 512, 513, 4096, 4097, 5120, 6145, 8192};
    const int64_t want[] = {128, 128, 128, 192, 192, 256, 512, 768, 4096, 6144, 6144, 8192, 8192};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        assert_int_equal(attention_cudnn_bucket_len(in[i]), want[i]);
    /* Every bucket holds its lengths, is a multiple of 64, overshoots by at
     * most 1.5x above 128, and 1..8192 need 13 of them. */
    int distinct = 0;
    int64_t last = 0;
    for (int64_t len = 1; len <= 8192; len++) {
        const int64_t b = attention_cudnn_bucket_len(len);
        assert_true(b >= len && b % 64 == 0);
        assert_true(len <= 128 || 2 * b <= 3 * len);
        assert_true(b >= last);
        distinct += b != last;
        last = b;
    }
    assert_int_equal(distinct, 13);
}

static gpu_attention_shape shape_of(int64_t n_tokens, int64_t n_seqs, int64_t max_len)
{
    gpu_attention_shape s = {.n_tokens = n_tokens, .n_seqs = n_seqs, .seq_offsets = NULL,
                             .max_seq_len = max_len, .heads = 32, .kv_heads = 8,
                             .head_dim = 128};
    return s;
}

static void test_keys(void **state)
{
    (void)state;
    const gpu_attention_shape s = shape_of(10240, 5, 5120);
    const attention_cudnn_key f = attention_cudnn_key_of(&s, false, false);
    assert_int_equal(f.b, 8);
    assert_int_equal(f.s, 6144);
    assert_int_equal(f.heads, 32);
    const attention_cudnn_key bwd = attention_cudnn_key_of(&s, true, false);
    assert_false(attention_cudnn_key_equal(&f, &bwd));
    const attention_cudnn_key exact = attention_cudnn_key_of(&s, false, true);
    assert_int_equal(exact.b, 5);
    assert_int_equal(exact.s, 5120);
    /* Another pack in the same buckets shares the plan. */
    const gpu_attention_shape t = shape_of(9000, 7, 4500);
    const attention_cudnn_key g = attention_cudnn_key_of(&t, false, false);
    assert_true(attention_cudnn_key_equal(&f, &g));
}

/* Packs of RL responses (lengths 100..5120, at most 10,240 tokens a
 * micro-batch) need far fewer plans than the cache holds. */
static void test_handful_of_plans(void **state)
{
    (void)state;
    attention_cudnn_key seen[256];
    int n_seen = 0;
    uint32_t r = 12345;
    for (int batch = 0; batch < 2000; batch++) {
        int64_t tokens = 0, n = 0, longest = 0;
        for (;;) {
            r = r * 1664525u + 1013904223u;
            const int64_t len = 100 + (int64_t)(r >> 8) % 5021;
            if (tokens + len > 10240)
                break;
            tokens += len, n++;
            longest = len > longest ? len : longest;
        }
        if (n == 0)
            continue;
        const gpu_attention_shape s = shape_of(tokens, n, longest);
        const attention_cudnn_key k = attention_cudnn_key_of(&s, false, false);
        int i = 0;
        while (i < n_seen && !attention_cudnn_key_equal(&seen[i], &k))
            i++;
        if (i == n_seen) {
            assert_true(n_seen < 256);
            seen[n_seen++] = k;
        }
    }
    print_message("%d forward plans for 2000 random packs\n", n_seen);
    /* Forward and backward each: together within the cache. */
    assert_true(2 * n_seen <= ATTENTION_CUDNN_MAX_PLANS);
}

static void test_batch_arrays(void **state)
{
    (void)state;
    const int64_t offsets[] = {0, 5120, 8120, 9620, 10220, 10240};
    const int64_t b = 8;
    const attention_cudnn_batch_layout l = attention_cudnn_batch_layout_of(b);
    assert_int_equal(l.q_off % 16, 0);
    assert_int_equal(l.kv_off % 16, 0);
    assert_int_equal(l.stats_off % 16, 0);
    assert_int_equal(l.seq_len % 16, 0);
    assert_true(l.kv_off >= (size_t)(b + 1) * 8 && l.bytes >= l.seq_len + (size_t)b * 4);
    unsigned char *buf = malloc(l.bytes);
    memset(buf, 0xab, l.bytes);
    attention_cudnn_batch_fill(buf, b, offsets, 5, 32, 8, 128);
    const int64_t *q = (const int64_t *)(const void *)(buf + l.q_off);
    const int64_t *kv = (const int64_t *)(const void *)(buf + l.kv_off);
    const int64_t *st = (const int64_t *)(const void *)(buf + l.stats_off);
    const int32_t *len = (const int32_t *)(const void *)(buf + l.seq_len);
    for (int64_t i = 0; i <= b; i++) {
        const int64_t t = offsets[i <= 5 ? i : 5]; /* empty sequences start at the end */
        assert_int_equal(q[i], t * 32 * 128);
        assert_int_equal(kv[i], t * 8 * 128);
        assert_int_equal(st[i], t * 32);
    }
    const int32_t want[] = {5120, 3000, 1500, 600, 20, 0, 0, 0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(len[i], want[i]);
    free(buf);
}

static void test_backward_buffers(void **state)
{
    (void)state;
    /* GQA: dQ accumulator, softmax sum, per-head dK and dV. */
    const attention_cudnn_bwd_layout g = attention_cudnn_bwd_layout_of(5120, 32, 8, 128);
    const size_t rows = 5120 + ATTENTION_CUDNN_BWD_SLACK; /* slack past the last token */
    const size_t full = rows * 32 * 128 * 4;
    assert_int_equal(g.dq_accum, 0);
    assert_int_equal(g.softmax_sum, full);
    assert_int_equal(g.dk_full, full + rows * 32 * 4);
    assert_int_equal(g.dv_full, g.dk_full + full);
    assert_int_equal(g.bytes, g.dv_full + full);
    print_message("backward buffers at 5120 tokens, 32/8 heads, d 128: %.1f MB\n",
                  (double)g.bytes / 1e6);
    /* MHA writes dK, dV directly: no per-head buffers. */
    const attention_cudnn_bwd_layout m = attention_cudnn_bwd_layout_of(37, 4, 4, 64);
    assert_int_equal(m.dk_full, m.dv_full);
    assert_int_equal(m.bytes, m.dv_full);
    assert_int_equal(m.softmax_sum % 256, 0);
    assert_int_equal(m.dk_full % 256, 0);
    assert_true(m.softmax_sum >= (size_t)(37 + ATTENTION_CUDNN_BWD_SLACK) * 4 * 64 * 4);
}

#if KPO_HAVE_CUDA && !KPO_HAVE_CUDNN
static void test_stub_says_why(void **state)
{
    (void)state;
    attention_cudnn *a = (attention_cudnn *)&a;
    kpo_error err;
    assert_int_equal(attention_cudnn_create(&a, &err), KPO_ERR);
    assert_null(a);
    assert_non_null(strstr(err.message, "kpo was built without cuDNN"));
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_seqs),
        cmocka_unit_test(test_bucket_len),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_handful_of_plans),
        cmocka_unit_test(test_batch_arrays),
        cmocka_unit_test(test_backward_buffers),
#if KPO_HAVE_CUDA && !KPO_HAVE_CUDNN
        cmocka_unit_test(test_stub_says_why),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
