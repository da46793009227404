/* What ends a response (src/data/stop_tokens.h): the paper's code's set
 * (end-of-text plus generation_config.json's eos ids), kpo's chat set, and
 * lists, on the byte tokenizer and, when ../shared is there, the Qwen one
 * with Qwen3-4B-Base's own generation_config.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "data/stop_tokens.h"
#include "../text/text_test_util.h"

static char dir_template[] = "/tmp/kpo-stop-XXXXXX";
static const char *dir;

static void write_generation_config(const char *json)
{
    char path[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
}

static void test_byte_tokenizer(void **state)
{
    (void)state;
    tokenizer *tok;
    kpo_error err;
    stop_tokens s;
    assert_int_equal(tokenizer_init_bytes(&tok, &err), KPO_OK);
    const int32_t eos = tokenizer_eos_id(tok);
    /* No generation_config.json: end-of-text alone, as vLLM. */
    assert_int_equal(stop_tokens_resolve("model", "k", dir, tok, &s, &err), KPO_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], eos);
    write_generation_config("{\"eos_token_id\": [10, 10, 33]}");
    assert_int_equal(stop_tokens_resolve("model", "k", dir, tok, &s, &err), KPO_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ids[1], 10);
    assert_int_equal(s.ids[2], 33);
    assert_int_equal(stop_tokens_resolve(" 7, 9 ,7", "k", dir, tok, &s, &err), KPO_OK);
    assert_int_equal(s.n, 2);
    /* Each refusal names the key and what is wrong. */
    assert_int_equal(stop_tokens_resolve("7,,9", "rollout.stop", dir, tok, &s, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "rollout.stop"));
    assert_int_equal(stop_tokens_resolve("999999", "rollout.stop", dir, tok, &s, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "999999"));
    assert_int_equal(stop_tokens_resolve("<|nope|>", "rollout.stop", dir, tok, &s, &err),
                     KPO_ERR);
    assert_non_null(strstr(err.message, "<|nope|>"));
    write_generation_config("{\"eos_token_id\": \"x\"}");
    assert_int_equal(stop_tokens_resolve("model", "k", dir, tok, &s, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "generation_config.json"));
    write_generation_config("{\"eos_token_id\": 100000}");
    assert_int_equal(stop_tokens_resolve("model", "k", dir, tok, &s, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "100000"));
    tokenizer_free(tok);
}

/* Qwen3-4B-Base: its generation_config.json names 151643 alone, where the
 * paper's vLLM rollout stops; the chat set adds <|im_end|> (151645). */
static void test_qwen_base(void **state)
{
    (void)state;
    char vocab[4096], gen[4096];
    if (!shared_data_path("qwen_tokenizer/vocab.json", vocab, sizeof vocab) ||
        !shared_data_path("qwen3_configs/Qwen3-4B-Base.generation_config.json", gen, sizeof gen))
        skip();
    vocab[strlen(vocab) - strlen("/vocab.json")] = '\0';
    tokenizer *tok;
    kpo_error err;
    stop_tokens s;
    assert_int_equal(tokenizer_load(&tok, vocab, &err), KPO_OK);
    char *text;
    size_t len;
    assert_int_equal(file_read_all(gen, &text, &len, &err), KPO_OK);
    write_generation_config(text);
    free(text);
    assert_int_equal(stop_tokens_resolve("model", "k", dir, tok, &s, &err), KPO_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 151643);
    assert_int_equal(stop_tokens_resolve("chat", "k", dir, tok, &s, &err), KPO_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[1], 151645);
    assert_int_equal(stop_tokens_resolve("<|im_end|>,151643", "k", dir, tok, &s, &err), KPO_OK);
    assert_int_equal(s.ids[0], 151645);
    char described[256];
    stop_tokens_describe(&s, tok, described, sizeof described);
    assert_string_equal(described, "151645 <|im_end|>, 151643 <|endoftext|>");
    tokenizer_free(tok);
}

static int cleanup(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    dir = mkdtemp(dir_template);
    if (!dir)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_tokenizer),
        cmocka_unit_test(test_qwen_base),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
