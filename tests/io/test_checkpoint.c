/* Checkpoints: bit-exact round trips, AdamW resumed from a checkpoint
 * matching an uninterrupted run, crash leftovers ignored and cleaned,
 * keep_last, damaged checkpoints failing with the file's name while
 * leaving the caller's model and optimizer untouched, and the tokenizer /
 * generation_config.json a checkpoint records so it stands alone; the
 * manifest (sizes, XXH64) and the fallback past corrupt checkpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>

#include "core/file_util.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "model/model_io_util.h"
#include "model/optimizer_adamw.h"
#include "tokenizer/tokenizer.h"
#include "train/train_data.h"
#include "../model/model_test_util.h"

static const char STATE[] = "{\"step\": 3, \"cursor\": 12, \"seed\": 7}";

static char root[256];

static int setup(void **state)
{
    (void)state;
    test_temp_dir(root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return file_remove_tree(root, NULL);
}

static adamw_config test_adamw_config(void)
{
    adamw_config c = adamw_config_default();
    c.lr = 1e-2;
    c.warmup_steps = 4; /* the lr depends on the restored step count */
    c.max_grad_norm = 0.5;
    return c;
}

/* A model and an optimizer with every buffer holding distinct values. */
static void make_pair(model *m, adamw_state *opt, uint64_t seed)
{
    test_tiny_model(m, 0, 4, 2, seed);
    adamw_config c = test_adamw_config();
    assert_int_equal(adamw_init(opt, m, &c, NULL), KPO_OK);
    rng_stream rng;
    rng_stream_init(&rng, seed, 99);
    for (int64_t i = 0; i < opt->n_params; i++) {
        opt->m[i] = (float)rng_normal(&rng);
        opt->v[i] = (float)fabs(rng_normal(&rng));
    }
    opt->step = 7;
}

/* A fresh model of the same shape, zeroed, and a zeroed optimizer. */
static void make_blank(const model *like, model *m, adamw_state *opt)
{
    assert_int_equal(model_init(m, &like->config, NULL), KPO_OK);
    adamw_config c = test_adamw_config();
    assert_int_equal(adamw_init(opt, m, &c, NULL), KPO_OK);
}

static void assert_same(const model *a, const adamw_state *oa, const model *b,
                        const adamw_state *ob)
{
    size_t bytes = (size_t)a->weights.n_params * sizeof(float);
    assert_int_equal(a->weights.n_params, b->weights.n_params);
    assert_memory_equal(a->weights.data, b->weights.data, bytes);
    assert_memory_equal(oa->m, ob->m, bytes);
    assert_memory_equal(oa->v, ob->v, bytes);
    assert_int_equal(oa->step, ob->step);
}

static void free_pair(model *m, adamw_state *opt)
{
    adamw_free(opt);
    model_free(m);
}

static void save_ok(int64_t step, const model *m, const adamw_state *opt, int keep_last)
{
    kpo_error err;
    int status = checkpoint_save(root, step, m, opt, STATE, keep_last, &err);
    if (status != KPO_OK)
        fail_msg("%s", err.message);
}

static void test_round_trip_bit_exact(void **state)
{
    (void)state;
    model m, back;
    adamw_state opt, opt_back;
    make_pair(&m, &opt, 1);
    save_ok(3, &m, &opt, 0);

    char dir[4096], want[4096];
    int64_t step;
    kpo_error err;
    assert_int_equal(checkpoint_find_latest(root, dir, sizeof dir, &step, &err), KPO_OK);
    assert_int_equal(step, 3);
    checkpoint_dir_name(root, 3, want, sizeof want);
    assert_string_equal(dir, want);

    make_blank(&m, &back, &opt_back);
    char *json = NULL;
    if (checkpoint_load(dir, &back, &opt_back, &json, &err) != KPO_OK)
        fail_msg("%s", err.message);
    assert_same(&m, &opt, &back, &opt_back);
    assert_string_equal(json, STATE);
    free(json);

    /* The weights alone are an ordinary HF checkpoint. */
    model plain;
    assert_int_equal(model_load(dir, &plain, &err), KPO_OK);
    assert_memory_equal(plain.weights.data, m.weights.data,
                        (size_t)m.weights.n_params * sizeof(float));
    model_free(&plain);

    /* A rank without an optimizer restores the weights alone. */
    adamw_state unused;
    model weights_only;
    make_blank(&m, &weights_only, &unused);
    assert_int_equal(checkpoint_load(dir, &weights_only, NULL, NULL, &err), KPO_OK);
    assert_memory_equal(weights_only.weights.data, m.weights.data,
                        (size_t)m.weights.n_params * sizeof(float));
    free_pair(&weights_only, &unused);
    free_pair(&back, &opt_back);
    free_pair(&m, &opt);
}

static void test_find_latest_empty(void **state)
{
    (void)state;
    char dir[4096], missing[512];
    int64_t step = 5;
    kpo_error err;
    assert_int_equal(checkpoint_find_latest(root, dir, sizeof dir, &step, &err), KPO_OK);
    assert_int_equal(step, -1);
    assert_string_equal(dir, "");
    snprintf(missing, sizeof missing, "%s/nowhere", root);
    assert_int_equal(checkpoint_find_latest(missing, dir, sizeof dir, &step, &err), KPO_OK);
    assert_int_equal(step, -1);
}

/* A gradient that depends on the weights, so the trajectory depends on
 * everything the optimizer carries. */
static void fake_gradient(const model *m, model_weights *g)
{
    for (int64_t i = 0; i < g->n_params; i++)
        g->data[i] = sinf(3.0f * m->weights.data[i] + 0.001f * (float)i);
}

static void run_steps(model *m, adamw_state *opt, int n)
{
    model_weights g;
    assert_int_equal(model_weights_init(m, &g, NULL), KPO_OK);
    for (int k = 0; k < n; k++) {
        fake_gradient(m, &g);
        adamw_step(opt, m, &g, NULL);
    }
    model_weights_free(&g);
}

static void test_resume_matches_uninterrupted(void **state)
{
    (void)state;
    model a, b;
    adamw_state oa, ob;
    test_tiny_model(&a, 1, 4, 2, 5);
    adamw_config c = test_adamw_config();
    assert_int_equal(adamw_init(&oa, &a, &c, NULL), KPO_OK);
    run_steps(&a, &oa, 3);
    save_ok(3, &a, &oa, 0);
    run_steps(&a, &oa, 4); /* uninterrupted: 7 steps */

    make_blank(&a, &b, &ob);
    char dir[4096];
    int64_t step;
    kpo_error err;
    assert_int_equal(checkpoint_find_latest(root, dir, sizeof dir, &step, &err), KPO_OK);
    if (checkpoint_load(dir, &b, &ob, NULL, &err) != KPO_OK)
        fail_msg("%s", err.message);
    assert_int_equal(ob.step, 3);
    run_steps(&b, &ob, 4);
    assert_same(&a, &oa, &b, &ob);
    free_pair(&a, &oa);
    free_pair(&b, &ob);
}

static void make_dir_with_file(const char *dir, const char *name)
{
    char path[8192];
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("half", f);
    fclose(f);
}

static void test_crash_leftovers_ignored_and_cleaned(void **state)
{
    (void)state;
    model m;
    adamw_state opt;
    make_pair(&m, &opt, 2);
    save_ok(1, &m, &opt, 0);
    /* What a crash mid-save leaves: a newer temporary dir, half written. */
    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof tmp, "%s/.tmp-step-00000002-4242", root);
    make_dir_with_file(tmp, "model.safetensors");
    int64_t step;
    kpo_error err;
    assert_int_equal(checkpoint_find_latest(root, dir, sizeof dir, &step, &err), KPO_OK);
    assert_int_equal(step, 1);
    assert_true(file_exists(tmp));
    save_ok(2, &m, &opt, 0);
    assert_false(file_exists(tmp));
    assert_int_equal(checkpoint_find_latest(root, dir, sizeof dir, &step, &err), KPO_OK);
    assert_int_equal(step, 2);
    free_pair(&m, &opt);
}

static int step_exists(int64_t step)
{
    char dir[4096];
    checkpoint_dir_name(root, step, dir, sizeof dir);
    return file_exists(dir);
}

static void test_keep_last_and_resave(void **state)
{
    (void)state;
    model m, back;
    adamw_state opt, opt_back;
    make_pair(&m, &opt, 3);
    for (int64_t s = 1; s <= 5; s++)
        save_ok(s * 10, &m, &opt, 2);
    for (int64_t s = 1; s <= 3; s++)
        assert_false(step_exists(s * 10));
    assert_true(step_exists(40));
    assert_true(step_exists(50));
    /* Saving a step again replaces it with the new contents. */
    opt.step = 11;
    m.weights.data[0] += 1.0f;
    save_ok(50, &m, &opt, 2);
    char dir[4096];
    checkpoint_dir_name(root, 50, dir, sizeof dir);
    make_blank(&m, &back, &opt_back);
    kpo_error err;
    assert_int_equal(checkpoint_load(dir, &back, &opt_back, NULL, &err), KPO_OK);
    assert_same(&m, &opt, &back, &opt_back);
    assert_true(step_exists(40));
    free_pair(&back, &opt_back);
    free_pair(&m, &opt);
}

/* Loads dir into a blank model that must come back unchanged, and checks
 * the error names `needle`. */
static void expect_load_error(const model *like, const char *dir, const char *needle)
{
    model back;
    adamw_state opt_back;
    make_blank(like, &back, &opt_back);
    back.weights.data[0] = 123.0f;
    opt_back.step = 99;
    kpo_error err;
    char *json = NULL;
    assert_int_equal(checkpoint_load(dir, &back, &opt_back, &json, &err), KPO_ERR);
    if (!strstr(err.message, needle))
        fail_msg("error '%s' does not name '%s'", err.message, needle);
    assert_null(json);
    assert_true(back.weights.data[0] == 123.0f && back.weights.data[1] == 0.0f);
    assert_int_equal(opt_back.step, 99);
    free_pair(&back, &opt_back);
}

static void overwrite(const char *dir, const char *name, const char *text)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(remove(path), 0);
}

static void test_damaged_checkpoints(void **state)
{
    (void)state;
    model m;
    adamw_state opt;
    make_pair(&m, &opt, 4);
    char dir[4096];
    checkpoint_dir_name(root, 1, dir, sizeof dir);

    save_ok(1, &m, &opt, 0);
    remove_file(dir, "optimizer.safetensors");
    expect_load_error(&m, dir, "optimizer.safetensors");

    save_ok(1, &m, &opt, 0);
    overwrite(dir, "optimizer.safetensors", "\x10\0\0\0\0\0\0\0{\"a\":");
    expect_load_error(&m, dir, "optimizer.safetensors");

    save_ok(1, &m, &opt, 0);
    overwrite(dir, "trainer_state.json", "{\"step\": ");
    expect_load_error(&m, dir, "trainer_state.json");

    save_ok(1, &m, &opt, 0);
    remove_file(dir, "trainer_state.json");
    expect_load_error(&m, dir, "trainer_state.json");

    save_ok(1, &m, &opt, 0);
    remove_file(dir, "model.safetensors");
    expect_load_error(&m, dir, "model.safetensors");

    /* A checkpoint of another shape is refused, naming the field. */
    model other;
    adamw_state other_opt;
    test_tiny_model(&other, 0, 4, 4, 4);
    adamw_config c = test_adamw_config();
    assert_int_equal(adamw_init(&other_opt, &other, &c, NULL), KPO_OK);
    save_ok(1, &other, &other_opt, 0);
    expect_load_error(&m, dir, "num_key_value_heads");
    free_pair(&other, &other_opt);

    char missing[4096];
    checkpoint_dir_name(root, 77, missing, sizeof missing);
    expect_load_error(&m, missing, "step-00000077");
    free_pair(&m, &opt);
}

static void test_hash_is_xxh64(void **state)
{
    (void)state;
    static const char LONG[] = "Nobody inspects the spammish repetition"; /* >= 32 bytes */
    assert_true(checkpoint_hash_bytes("", 0, 0) == 0xef46db3751d8e999ULL);
    assert_true(checkpoint_hash_bytes("a", 1, 0) == 0xd24ec4f1a98c6e5bULL);
    assert_true(checkpoint_hash_bytes("abc", 3, 0) == 0x44bc2cf5ad770999ULL);
    assert_true(checkpoint_hash_bytes(LONG, strlen(LONG), 0) == 0xfbcea83c8a378bf1ULL);
}

/* One byte of dir/name flipped (keep_size) or the file cut to half. */
static void damage(const char *dir, const char *name, int keep_size)
{
    char path[8192], *data;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(file_read_all(path, &data, &n, NULL), KPO_OK);
    if (keep_size)
        data[n / 2] ^= 1;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, keep_size ? n : n / 2, f), keep_size ? n : n / 2);
    fclose(f);
    free(data);
}

typedef struct skips {
    int n;
    int64_t steps[4];
    char why[4][512];
} skips;

static void note_skip(void *ctx, int64_t step, const char *dir, const char *why)
{
    skips *s = ctx;
    assert_non_null(strstr(dir, "step-"));
    s->steps[s->n] = step;
    snprintf(s->why[s->n++], sizeof s->why[0], "%s", why);
}

static void expect_verify_error(const char *dir, const char *needle)
{
    int verified = 5;
    kpo_error err;
    assert_int_equal(checkpoint_verify(dir, &verified, &err), KPO_ERR);
    if (!strstr(err.message, needle))
        fail_msg("error '%s' does not name '%s'", err.message, needle);
    assert_int_equal(verified, 0);
}

static void test_manifest_verify_and_fallback(void **state)
{
    (void)state;
    model m;
    adamw_state opt;
    make_pair(&m, &opt, 8);
    for (int64_t s = 1; s <= 3; s++)
        save_ok(s, &m, &opt, 0);
    char d1[4096], d2[4096], d3[4096], dir[4096];
    checkpoint_dir_name(root, 1, d1, sizeof d1);
    checkpoint_dir_name(root, 2, d2, sizeof d2);
    checkpoint_dir_name(root, 3, d3, sizeof d3);
    int verified = 0;
    kpo_error err;
    assert_int_equal(checkpoint_verify(d3, &verified, &err), KPO_OK);
    assert_int_equal(verified, 1);

    damage(d3, "model.safetensors", 0);
    expect_verify_error(d3, "model.safetensors is ");
    damage(d2, "optimizer.safetensors", 1);
    expect_verify_error(d2, "optimizer.safetensors has checksum xxh64 ");
    /* The newest complete one, each newer one reported, newest first. */
    skips seen = {0};
    int64_t step;
    assert_int_equal(checkpoint_find_verified(root, dir, sizeof dir, &step, &verified, note_skip,
                                              &seen, &err), KPO_OK);
    assert_int_equal(step, 1);
    assert_string_equal(dir, d1);
    assert_int_equal(verified, 1);
    assert_int_equal(seen.n, 2);
    assert_true(seen.steps[0] == 3 && seen.steps[1] == 2);
    assert_non_null(strstr(seen.why[0], "model.safetensors"));
    assert_non_null(strstr(seen.why[1], "optimizer.safetensors"));

    /* None complete: an error naming each. */
    damage(d1, "trainer_state.json", 1);
    expect_verify_error(d1, "trainer_state.json has checksum");
    assert_int_equal(checkpoint_find_verified(root, dir, sizeof dir, &step, &verified, NULL, NULL,
                                              &err), KPO_ERR);
    assert_non_null(strstr(err.message, "no complete checkpoint"));
    assert_non_null(strstr(err.message, "step-00000003: model.safetensors"));
    assert_non_null(strstr(err.message, "step-00000001: trainer_state.json"));

    /* A checkpoint without a manifest (an older kpo's) is taken unverified;
     * a damaged manifest is itself a fault. */
    remove_file(d2, "manifest.json");
    assert_int_equal(checkpoint_find_verified(root, dir, sizeof dir, &step, &verified, NULL, NULL,
                                              &err), KPO_OK);
    assert_int_equal(step, 2);
    assert_int_equal(verified, 0);
    overwrite(d3, "manifest.json", "{\"format\": ");
    expect_verify_error(d3, "manifest.json: not valid JSON");

    /* No checkpoint at all is a fresh start. */
    char empty[4096];
    snprintf(empty, sizeof empty, "%s/none", root);
    assert_int_equal(checkpoint_find_verified(empty, dir, sizeof dir, &step, &verified, NULL, NULL,
                                              &err), KPO_OK);
    assert_int_equal(step, -1);
    free_pair(&m, &opt);
}

static void test_bad_save_arguments(void **state)
{
    (void)state;
    model m;
    adamw_state opt;
    make_pair(&m, &opt, 6);
    kpo_error err;
    assert_int_equal(checkpoint_save(root, 1, &m, &opt, "{not json", 0, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "JSON"));
    assert_int_equal(checkpoint_save(root, -1, &m, &opt, STATE, 0, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "step"));
    assert_false(step_exists(1));
    free_pair(&m, &opt);
}

/* ---- the recorded tokenizer ---- */

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(model_io_write_atomic(path, text, strlen(text), NULL), KPO_OK);
}

static char *read_text(const char *dir, const char *name)
{
    char path[4096], *text = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    kpo_error err;
    if (file_read_all(path, &text, NULL, &err) != KPO_OK)
        fail_msg("%s", err.message);
    return text;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char *text = read_text(dir, name);
    cJSON *json = cJSON_Parse(text);
    free(text);
    assert_non_null(json);
    return json;
}

static int json_int(const cJSON *root, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    assert_true(cJSON_IsNumber(item));
    return item->valueint;
}

/* GPT-2's byte-level alphabet as a vocab.json: byte b is the code point b
 * when printable, else 256 + n; the smallest BPE tokenizer_load accepts.
 * Then "ab" (a merge), and tokenizer_config.json's added tokens: end of
 * text 257 and a bos "<s>" 258. */
static void write_bpe_tokenizer(const char *dir)
{
    char vocab[8192];
    size_t used = (size_t)snprintf(vocab, sizeof vocab, "{");
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
        char utf8[4];
        int n = 0;
        if (cp < 0x80) {
            utf8[n++] = (char)cp;
        } else {
            utf8[n++] = (char)(0xC0 | (cp >> 6));
            utf8[n++] = (char)(0x80 | (cp & 0x3F));
        }
        const char *escape = cp == '"' ? "\\\"" : cp == '\\' ? "\\\\" : NULL;
        used += (size_t)snprintf(vocab + used, sizeof vocab - used, "\"%s%.*s\": %d, ",
                                 escape ? escape : "", escape ? 0 : n, utf8, b);
    }
    snprintf(vocab + used, sizeof vocab - used, "\"ab\": 256}");
    write_text(dir, "vocab.json", vocab);
    write_text(dir, "merges.txt", "#version: 0.2\na b\n");
    write_text(dir, "tokenizer_config.json",
               "{\"added_tokens_decoder\": {\"257\": {\"content\": \"<|endoftext|>\", "
               "\"special\": true}, \"258\": {\"content\": \"<s>\", \"special\": true}}, "
               "\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"<|endoftext|>\"}");
}

static void save_from_ok(int64_t step, const model *m, const adamw_state *opt,
                         const checkpoint_source *source, char *dir, size_t dir_size)
{
    kpo_error err;
    if (checkpoint_save_from(root, step, m, opt, STATE, 0, source, &err) != KPO_OK)
        fail_msg("%s", err.message);
    checkpoint_dir_name(root, step, dir, dir_size);
}

static void test_records_byte_tokenizer(void **state)
{
    (void)state;
    model m, back;
    adamw_state opt, opt_back;
    make_pair(&m, &opt, 11);
    char dir[4096], resolved[4096];
    checkpoint_source source = {.tokenizer = "byte", .model_dir = NULL};
    save_from_ok(2, &m, &opt, &source, dir, sizeof dir);
    /* kpo eval's resolution (no --tokenizer) finds the byte tokenizer. */
    kpo_error err;
    assert_int_equal(train_tokenizer_resolve(NULL, dir, resolved, sizeof resolved, &err), KPO_OK);
    assert_string_equal(resolved, "byte");
    tokenizer *tok;
    assert_int_equal(tokenizer_load(&tok, "byte", &err), KPO_OK);
    cJSON *gen = read_json(dir, "generation_config.json");
    assert_int_equal(json_int(gen, "eos_token_id"), tokenizer_eos_id(tok));
    assert_int_equal(json_int(gen, "eos_token_id"), 256); /* 256 bytes, then <|endoftext|> */
    assert_null(cJSON_GetObjectItemCaseSensitive(gen, "bos_token_id"));
    cJSON_Delete(gen);
    tokenizer_free(tok);
    /* The extra files change nothing about resuming. */
    make_blank(&m, &back, &opt_back);
    assert_int_equal(checkpoint_load(dir, &back, &opt_back, NULL, &err), KPO_OK);
    assert_same(&m, &opt, &back, &opt_back);
    free_pair(&back, &opt_back);
    free_pair(&m, &opt);
}

static void test_records_tokenizer_files(void **state)
{
    (void)state;
    char src[300], tok_dir[512], dir[4096], resolved[4096];
    snprintf(src, sizeof src, "%.250s-source", root);
    snprintf(tok_dir, sizeof tok_dir, "%s/tok", src);
    kpo_error err;
    assert_int_equal(file_make_dirs(tok_dir, &err), KPO_OK);
    write_bpe_tokenizer(tok_dir);
    /* The starting model: templates to keep, a tokenizer entry that will
     * not be true of the checkpoint, no generation_config.json. */
    write_text(src, "kpo_model.json",
               "{\"tokenizer\": \"/nowhere/tok\", \"chat_template\": \"qwen3\"}");
    model m;
    adamw_state opt;
    make_pair(&m, &opt, 12);
    checkpoint_source source = {.tokenizer = tok_dir, .model_dir = src};
    save_from_ok(4, &m, &opt, &source, dir, sizeof dir);
    const char *copied[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    for (size_t k = 0; k < 3; k++) {
        char *a = read_text(tok_dir, copied[k]), *b = read_text(dir, copied[k]);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    char path[4200];
    snprintf(path, sizeof path, "%.4096s/tokenizer.json", dir);
    assert_false(file_exists(path)); /* only what the source has */
    cJSON *meta = read_json(dir, "kpo_model.json");
    assert_null(cJSON_GetObjectItemCaseSensitive(meta, "tokenizer"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(meta, "chat_template")->valuestring,
                        "qwen3");
    cJSON_Delete(meta);
    assert_int_equal(train_tokenizer_resolve(NULL, dir, resolved, sizeof resolved, &err), KPO_OK);
    assert_string_equal(resolved, dir);
    tokenizer *tok;
    if (tokenizer_load(&tok, dir, &err) != KPO_OK)
        fail_msg("%s", err.message);
    assert_int_equal(tokenizer_token_id(tok, "ab"), 256);
    cJSON *gen = read_json(dir, "generation_config.json");
    assert_int_equal(json_int(gen, "eos_token_id"), 257);
    assert_int_equal(json_int(gen, "bos_token_id"), 258);
    cJSON_Delete(gen);
    tokenizer_free(tok);

    /* A starting model's own generation_config.json is copied as it is. */
    const char own[] = "{\"eos_token_id\": [257, 3], \"temperature\": 0.7}";
    write_text(src, "generation_config.json", own);
    save_from_ok(5, &m, &opt, &source, dir, sizeof dir);
    char *text = read_text(dir, "generation_config.json");
    assert_string_equal(text, own);
    free(text);

    /* A tokenizer directory without a tokenizer fails, naming it, and
     * publishes nothing. */
    source.tokenizer = src;
    assert_int_equal(checkpoint_save_from(root, 6, &m, &opt, STATE, 0, &source, &err), KPO_ERR);
    assert_non_null(strstr(err.message, src));
    assert_non_null(strstr(err.message, "vocab.json"));
    assert_false(step_exists(6));
    assert_int_equal(file_remove_tree(src, NULL), KPO_OK);
    free_pair(&m, &opt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_bit_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_latest_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_matches_uninterrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_leftovers_ignored_and_cleaned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_last_and_resave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_save_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_is_xxh64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_verify_and_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_byte_tokenizer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_tokenizer_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
