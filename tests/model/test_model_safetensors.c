/* safetensors and config.json: round trips, BF16 rounding, sharded
 * checkpoints, and every kind of bad input failing with a message that
 * names the file and the tensor or field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "core/file_util.h"

#include "model/model.h"
#include "model/safetensors.h"
#include "model_test_util.h"

static char dir[256];

static void write_file(const char *name, const void *data, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

/* A safetensors file with the given header and data_bytes zero bytes. */
static void write_raw(const char *name, const char *header, size_t data_bytes,
                      uint64_t header_length_override)
{
    size_t n = strlen(header);
    uint64_t len = header_length_override ? header_length_override : n;
    size_t total = 8 + n + data_bytes;
    uint8_t *buf = calloc(total, 1);
    for (int k = 0; k < 8; k++)
        buf[k] = (uint8_t)(len >> (8 * k));
    memcpy(buf + 8, header, n);
    write_file(name, buf, total);
    free(buf);
}

static void expect_open_error(const char *name, const char *fragment)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    safetensors_file f;
    kpo_error err;
    assert_int_equal(safetensors_open(path, &f, &err), KPO_ERR);
    printf("  %s -> %s\n", name, err.message);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, fragment));
}

static void test_bf16_round_to_nearest_even(void **state)
{
    (void)state;
    struct {
        uint32_t in;
        uint16_t out;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1.0 exact */
        {0x3f808000u, 0x3f80}, /* halfway, even below: stays */
        {0x3f818000u, 0x3f82}, /* halfway, odd below: rounds up to even */
        {0x3f808001u, 0x3f81}, /* just above halfway */
        {0x3f807fffu, 0x3f80}, /* just below halfway */
        {0x7f7fffffu, 0x7f80}, /* max float overflows to inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x80000000u, 0x8000}, /* -0 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float f;
        memcpy(&f, &cases[k].in, 4);
        assert_int_equal(safetensors_f32_to_bf16(f), cases[k].out);
    }
    float nan_value;
    uint32_t nan_bits = 0x7f800001u; /* signalling NaN whose top half is inf */
    memcpy(&nan_value, &nan_bits, 4);
    uint16_t b = safetensors_f32_to_bf16(nan_value);
    assert_true((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0);
    assert_true(safetensors_f16_to_f32(0x3c00) == 1.0f);
    assert_true(safetensors_f16_to_f32(0xc000) == -2.0f);
    assert_true(safetensors_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
    assert_true(safetensors_f16_to_f32(0x7bff) == 65504.0f);
}

static void test_model_round_trip(void **state)
{
    (void)state;
    for (int tied = 0; tied < 2; tied++) {
        model m, back;
        kpo_error err;
        test_tiny_model(&m, tied, 4, 2, 7);
        char sub[300];
        snprintf(sub, sizeof sub, "%s/rt%d", dir, tied);
        assert_int_equal(model_save(&m, sub, SAFETENSORS_F32, &err), KPO_OK);
        assert_int_equal(model_load(sub, &back, &err), KPO_OK);
        assert_int_equal(back.weights.n_params, m.weights.n_params);
        assert_int_equal(back.config.tie_word_embeddings, tied);
        assert_memory_equal(back.weights.data, m.weights.data,
                            (size_t)m.weights.n_params * sizeof(float));
        model_free(&back);
        /* BF16: what comes back is exactly the round-to-nearest-even value. */
        assert_int_equal(model_save(&m, sub, SAFETENSORS_BF16, &err), KPO_OK);
        assert_int_equal(model_load(sub, &back, &err), KPO_OK);
        for (int64_t i = 0; i < m.weights.n_params; i++) {
            float want = safetensors_bf16_to_f32(safetensors_f32_to_bf16(m.weights.data[i]));
            assert_memory_equal(&back.weights.data[i], &want, sizeof want);
        }
        model_free(&back);
        model_free(&m);
    }
}

/* Splits a saved model into two shards plus an index and loads it back. */
static void test_sharded_index(void **state)
{
    (void)state;
    model m, back;
    kpo_error err;
    test_tiny_model(&m, 0, 4, 4, 3);
    char sub[300], path[400];
    snprintf(sub, sizeof sub, "%s/sharded", dir);
    assert_int_equal(model_save(&m, sub, SAFETENSORS_F32, &err), KPO_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", sub);
    remove(path);
    size_t half = m.n_params_table / 2;
    safetensors_entry *e = calloc(m.n_params_table, sizeof *e);
    for (size_t k = 0; k < m.n_params_table; k++) {
        e[k].name = m.params[k].name;
        e[k].data = m.weights.data + m.params[k].offset;
        e[k].rank = m.params[k].rank;
        e[k].shape[0] = m.params[k].shape[0];
        e[k].shape[1] = m.params[k].shape[1];
    }
    snprintf(path, sizeof path, "%s/a.safetensors", sub);
    assert_int_equal(safetensors_write(path, e, half, SAFETENSORS_F32, &err), KPO_OK);
    snprintf(path, sizeof path, "%s/b.safetensors", sub);
    assert_int_equal(safetensors_write(path, e + half, m.n_params_table - half, SAFETENSORS_BF16,
                                       &err),
                     KPO_OK);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sub);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
    for (size_t k = 0; k < m.n_params_table; k++)
        fprintf(f, "%s\"%s\": \"%s\"", k ? ", " : "", m.params[k].name, k < half ? "a.safetensors"
                                                                                : "b.safetensors");
    fprintf(f, "}}");
    fclose(f);
    assert_int_equal(model_load(sub, &back, &err), KPO_OK);
    for (size_t k = 0; k < m.n_params_table; k++)
        for (int64_t i = 0; i < m.params[k].numel; i++) {
            float w = m.weights.data[m.params[k].offset + i];
            float want = k < half ? w : safetensors_bf16_to_f32(safetensors_f32_to_bf16(w));
            assert_true(back.weights.data[m.params[k].offset + i] == want);
        }
    model_free(&back);
    free(e);
    model_free(&m);
}

static void test_bad_files(void **state)
{
    (void)state;
    write_file("short.safetensors", "\x10\x00\x00", 3);
    expect_open_error("short.safetensors", "truncated");
    write_raw("beyond.safetensors", "{}", 0, 4096);
    expect_open_error("beyond.safetensors", "beyond the file size");
    write_raw("outside.safetensors",
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8, 0);
    expect_open_error("outside.safetensors", "tensor 'w'");
    write_raw("overlap.safetensors",
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
              " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
              12, 0);
    expect_open_error("overlap.safetensors", "overlap");
    write_raw("dtype.safetensors",
              "{\"w\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8, 0);
    expect_open_error("dtype.safetensors", "unknown or unsupported dtype 'Q4'");
    write_raw("span.safetensors",
              "{\"w\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8, 0);
    expect_open_error("span.safetensors", "tensor 'w'");
    write_raw("json.safetensors", "{not json", 0, 0);
    expect_open_error("json.safetensors", "JSON");
}

static void expect_load_error(const char *sub, const char *fragment)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    model m;
    memset(&m, 0x5a, sizeof m);
    model before = m;
    kpo_error err;
    assert_int_equal(model_load(path, &m, &err), KPO_ERR);
    printf("  %s -> %s\n", sub, err.message);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, fragment));
    assert_memory_equal(&m, &before, sizeof m); /* nothing half-loaded */
}

static void save_tiny(const char *sub, model *m)
{
    char path[300];
    kpo_error err;
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    test_tiny_model(m, 1, 4, 2, 11);
    assert_int_equal(model_save(m, path, SAFETENSORS_F32, &err), KPO_OK);
}

static void replace_in_file(const char *sub, const char *file, const char *from, const char *to)
{
    char path[400], *text;
    kpo_error err;
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    size_t len;
    assert_int_equal(file_read_all(path, &text, &len, &err), KPO_OK);
    char *at = strstr(text, from);
    assert_non_null(at);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, (size_t)(at - text), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    free(text);
}

static void test_bad_checkpoints(void **state)
{
    (void)state;
    model m;
    save_tiny("missing_field", &m);
    model_free(&m);
    replace_in_file("missing_field", "config.json", "\"head_dim\"", "\"head_dim_x\"");
    expect_load_error("missing_field", "field 'head_dim' is missing");

    save_tiny("zero_field", &m);
    model_free(&m);
    replace_in_file("zero_field", "config.json", "\"num_hidden_layers\":\t2",
                    "\"num_hidden_layers\":\t0");
    expect_load_error("zero_field", "field 'num_hidden_layers' must be > 0");

    /* A config that promises more layers than the weights hold. */
    save_tiny("missing_tensor", &m);
    model_free(&m);
    replace_in_file("missing_tensor", "config.json", "\"num_hidden_layers\":\t2",
                    "\"num_hidden_layers\":\t3");
    expect_load_error("missing_tensor", "tensor 'model.layers.2.input_layernorm.weight' is missing");

    save_tiny("wrong_shape", &m);
    model_free(&m);
    replace_in_file("wrong_shape", "config.json", "\"intermediate_size\":\t40",
                    "\"intermediate_size\":\t41");
    expect_load_error("wrong_shape", "tensor 'model.layers.0.mlp.gate_proj.weight' has shape "
                                     "[40, 24] but config.json implies [41, 24]");

    /* Truncating the weights file leaves offsets pointing past its end. */
    save_tiny("truncated", &m);
    model_free(&m);
    char path[400];
    snprintf(path, sizeof path, "%s/truncated/model.safetensors", dir);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, size - 4), 0);
    expect_load_error("truncated", "outside the data section");
    assert_int_equal(truncate(path, 100), 0);
    expect_load_error("truncated", "beyond the file size");
}

int main(void)
{
    test_temp_dir(dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_round_to_nearest_even),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_sharded_index),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_checkpoints),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failed;
}
