/* The tokenizers: known Qwen ids, digits, CJK, emoji, whitespace runs,
 * invalid UTF-8, byte-exact round trips over MATH-500 and AIME, special
 * tokens, the chat template's guarded encoding, and the streaming decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data/chat_template.h"
#include "data/dataset.h"
#include "tests/text/text_test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

static tokenizer *qwen;

static int load_qwen(void **state)
{
    (void)state;
    char path[4096];
    if (!shared_data_path("qwen_tokenizer/vocab.json", path, sizeof path))
        return 0;
    kpo_error err;
    path[strlen(path) - strlen("/vocab.json")] = '\0';
    if (tokenizer_load(&qwen, path, &err) != KPO_OK) {
        printf("loading %s failed: %s\n", path, err.message);
        return -1;
    }
    return 0;
}

static int free_qwen(void **state)
{
    (void)state;
    tokenizer_free(qwen);
    return 0;
}

#define NEED_QWEN()                                                                            \
    do {                                                                                       \
        if (!qwen)                                                                             \
            skip();                                                                            \
    } while (0)

static void encode(const tokenizer *tok, const char *text, size_t len, int flags, id_list *ids)
{
    kpo_error err;
    id_list_init(ids);
    assert_int_equal(tokenizer_encode(tok, text, len, flags, ids, &err), KPO_OK);
}

/* Encodes, checks the decode gives the same bytes back, returns the ids. */
static void assert_round_trip(const tokenizer *tok, const char *text, size_t len, int flags)
{
    id_list ids;
    encode(tok, text, len, flags, &ids);
    text_buf back;
    text_buf_init(&back);
    kpo_error err;
    assert_int_equal(tokenizer_decode(tok, ids.ids, ids.count, &back, &err), KPO_OK);
    assert_int_equal(back.len, len);
    if (len)
        assert_memory_equal(back.data, text, len);
    text_buf_free(&back);
    id_list_free(&ids);
}

static void assert_ids(const char *text, const int32_t *expected, size_t n)
{
    id_list ids;
    encode(qwen, text, strlen(text), TOKENIZER_MATCH_SPECIAL, &ids);
    assert_int_equal(ids.count, n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(ids.ids[k], expected[k]);
    id_list_free(&ids);
}

static void test_hello_world(void **state)
{
    (void)state;
    NEED_QWEN();
    assert_ids("Hello world", (const int32_t[]){9707, 1879}, 2);
    assert_ids(" Hello world", (const int32_t[]){21927, 1879}, 2);
    assert_int_equal(tokenizer_vocab_size(qwen), 151669);
    assert_int_equal(tokenizer_eos_id(qwen), 151643);
    assert_int_equal(tokenizer_token_id(qwen, "<|im_end|>"), 151645);
    assert_int_equal(tokenizer_token_id(qwen, "</think>"), 151668);
}

static void test_digits_split_one_by_one(void **state)
{
    (void)state;
    NEED_QWEN();
    id_list ids;
    encode(qwen, "1234567890", 10, 0, &ids);
    assert_int_equal(ids.count, 10);
    for (size_t k = 0; k < 10; k++) {
        size_t len;
        const char *bytes = tokenizer_token_bytes(qwen, ids.ids[k], &len);
        assert_int_equal(len, 1);
        assert_int_equal(bytes[0], "1234567890"[k]);
    }
    id_list_free(&ids);
}

static void test_round_trips_of_hard_text(void **state)
{
    (void)state;
    NEED_QWEN();
    static const char *const cases[] = {
        "\\frac{\\sqrt{3}}{2} + \\left(\\int_0^1 x^2\\,dx\\right) = \\boxed{\\dfrac{7}{6}}",
        "这是一个数学问题：求 $x$ 的值。", "日本語のテキスト", "emoji 😀👍🏽🧮 and 👨‍👩‍👧",
        "a  b   c    d", "\n\n\n", "line\r\nline\r\n", "\t \t  \n  x", "   trailing   ",
        "I'm you'LL they've", "x" /* single byte */, "",
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        assert_round_trip(qwen, cases[k], strlen(cases[k]), TOKENIZER_MATCH_SPECIAL);
    id_list ids;
    encode(qwen, "", 0, 0, &ids);
    assert_int_equal(ids.count, 0);
    id_list_free(&ids);
    /* Runs of spaces: Qwen keeps a run minus its last space as one piece. */
    encode(qwen, "a    b", 6, 0, &ids);
    assert_int_equal(ids.count, 3);
    id_list_free(&ids);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    NEED_QWEN();
    static const char bad[] = "ok \xff\xfe mid \xe4\xb8 cut \xc0\xaf over \xed\xa0\x80 end \xf0\x9f";
    assert_round_trip(qwen, bad, sizeof bad - 1, 0);
    tokenizer *bytes;
    kpo_error err;
    assert_int_equal(tokenizer_init_bytes(&bytes, &err), KPO_OK);
    assert_round_trip(bytes, bad, sizeof bad - 1, 0);
    tokenizer_free(bytes);
}

static void test_enormous_line(void **state)
{
    (void)state;
    NEED_QWEN();
    size_t len = 1 << 20;
    char *text = malloc(len);
    for (size_t k = 0; k < len; k++)
        text[k] = (char)('a' + (k * 7 + k / 13) % 26); /* one 1 MiB word */
    assert_round_trip(qwen, text, len, 0);
    memset(text, ' ', len);
    assert_round_trip(qwen, text, len, 0);
    free(text);
}

static void test_special_tokens(void **state)
{
    (void)state;
    NEED_QWEN();
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    id_list with, without;
    encode(qwen, text, strlen(text), TOKENIZER_MATCH_SPECIAL, &with);
    encode(qwen, text, strlen(text), 0, &without);
    assert_int_equal(with.ids[0], 151644);
    assert_int_equal(with.ids[with.count - 1], 151645);
    for (size_t k = 0; k < without.count; k++)
        assert_true(without.ids[k] < 151643);
    id_list_free(&with);
    id_list_free(&without);
}

static void test_chat_template(void **state)
{
    (void)state;
    NEED_QWEN();
    kpo_error err;
    text_buf text;
    text_buf_init(&text);
    assert_int_equal(chat_template_render(CHAT_TEMPLATE_QWEN3, "What is 1+1?", &text, &err),
                     KPO_OK);
    assert_string_equal(text.data, "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>"
                                   "assistant\n<think>\n\n</think>\n\n");
    /* The guarded encoding equals HF's encoding of the rendered string. */
    id_list direct, chat;
    encode(qwen, text.data, text.len, TOKENIZER_MATCH_SPECIAL, &direct);
    id_list_init(&chat);
    assert_int_equal(chat_template_encode(CHAT_TEMPLATE_QWEN3, qwen, "What is 1+1?", &chat, &err),
                     KPO_OK);
    assert_int_equal(chat.count, direct.count);
    assert_memory_equal(chat.ids, direct.ids, chat.count * sizeof *chat.ids);
    id_list_free(&chat);
    /* A problem cannot close the user turn with a literal <|im_end|>. */
    id_list_init(&chat);
    assert_int_equal(chat_template_encode(CHAT_TEMPLATE_QWEN3, qwen, "x<|im_end|>y", &chat, &err),
                     KPO_OK);
    size_t n_end = 0;
    for (size_t k = 0; k < chat.count; k++)
        n_end += chat.ids[k] == 151645;
    assert_int_equal(n_end, 1);
    id_list_free(&chat);
    id_list_free(&direct);
    text_buf_clear(&text);
    assert_int_equal(chat_template_render(CHAT_TEMPLATE_RAW, "p", &text, &err), KPO_OK);
    assert_string_equal(text.data, "p");
    text_buf_free(&text);
}

static void round_trip_file(const char *name, size_t expected)
{
    char path[4096];
    if (!shared_data_path(name, path, sizeof path))
        skip();
    dataset ds;
    kpo_error err;
    assert_int_equal(dataset_load(&ds, path, NULL, &err), KPO_OK);
    assert_int_equal(ds.count, expected);
    for (size_t k = 0; k < ds.count; k++)
        assert_round_trip(qwen, ds.records[k].problem, strlen(ds.records[k].problem),
                          TOKENIZER_MATCH_SPECIAL);
    dataset_free(&ds);
}

static void test_round_trip_math500(void **state)
{
    (void)state;
    NEED_QWEN();
    round_trip_file("math500.jsonl", 500);
}

static void test_round_trip_aime(void **state)
{
    (void)state;
    NEED_QWEN();
    round_trip_file("aime24.jsonl", 30);
    round_trip_file("aime25.jsonl", 30);
}

static void test_byte_tokenizer(void **state)
{
    (void)state;
    tokenizer *tok;
    kpo_error err;
    assert_int_equal(tokenizer_load(&tok, "byte", &err), KPO_OK);
    assert_int_equal(tokenizer_get_kind(tok), TOKENIZER_BYTE);
    assert_int_equal(tokenizer_vocab_size(tok), 261);
    id_list ids;
    encode(tok, "<|im_start|>hi</think>", 22, TOKENIZER_MATCH_SPECIAL, &ids);
    assert_int_equal(ids.count, 4);
    assert_int_equal(ids.ids[0], tokenizer_token_id(tok, "<|im_start|>"));
    assert_int_equal(ids.ids[1], 'h');
    assert_int_equal(ids.ids[3], tokenizer_token_id(tok, "</think>"));
    id_list_free(&ids);
    assert_round_trip(tok, "any \x80 bytes \xff", 14, TOKENIZER_MATCH_SPECIAL);
    text_buf out;
    text_buf_init(&out);
    int32_t bad = 261;
    assert_int_equal(tokenizer_decode(tok, &bad, 1, &out, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "261"));
    text_buf_free(&out);
    tokenizer_free(tok);
}

static void test_load_errors(void **state)
{
    (void)state;
    tokenizer *tok;
    kpo_error err;
    assert_int_equal(tokenizer_load(&tok, "/nonexistent/dir", &err), KPO_ERR);
    assert_non_null(strstr(err.message, "/nonexistent/dir"));
}

/* A minimal byte-level BPE directory (every byte, then extra_vocab's
 * entries) in a fresh temporary directory; config (may be NULL) becomes its
 * tokenizer_config.json. */
static void write_tiny_tokenizer(char *dir, size_t size, const char *extra_vocab,
                                 const char *config)
{
    snprintf(dir, size, "/tmp/kpo_tok_XXXXXX");
    assert_non_null(mkdtemp(dir));
    text_buf vocab;
    text_buf_init(&vocab);
    text_buf_append(&vocab, "{", 1);
    for (int b = 0; b < 256; b++) {
        char head[32];
        text_buf_append(&vocab, "\"", 1);
        uint32_t cp = utf8_byte_to_symbol((unsigned char)b);
        if (cp == '"' || cp == '\\')
            text_buf_append(&vocab, "\\", 1);
        utf8_append(&vocab, cp);
        int n = snprintf(head, sizeof head, "\": %d,", b);
        text_buf_append(&vocab, head, (size_t)n);
    }
    text_buf_append(&vocab, extra_vocab, strlen(extra_vocab));
    text_buf_append(&vocab, "}", 1);
    char path[4200];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(vocab.data, 1, vocab.len, f);
    fclose(f);
    text_buf_free(&vocab);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("#version: 0.2\n", f);
    fclose(f);
    if (config) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        f = fopen(path, "wb");
        assert_non_null(f);
        fputs(config, f);
        fclose(f);
    }
}

static void remove_tiny_tokenizer(const char *dir)
{
    static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                        "tokenizer.json"};
    char path[4200];
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        remove(path);
    }
    remove(dir);
}

/* Loading dir fails with a message holding every needle. */
static void assert_load_fails(const char *dir, const char *const *needles, size_t n)
{
    tokenizer *tok = NULL;
    kpo_error err;
    assert_int_equal(tokenizer_load(&tok, dir, &err), KPO_ERR);
    for (size_t k = 0; k < n; k++) {
        if (!strstr(err.message, needles[k]))
            fail_msg("'%s' lacks '%s'", err.message, needles[k]);
    }
}

/* Issue 17: an array "added_tokens_decoder" (no keys) crashed strtol. */
static void test_added_tokens_decoder_array(void **state)
{
    (void)state;
    char dir[64];
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256",
                         "{\"added_tokens_decoder\": [{\"content\": \"<x>\"}]}");
    const char *needles[] = {"tokenizer_config.json", "\"added_tokens_decoder\"", "not an object"};
    assert_load_fails(dir, needles, 3);
    remove_tiny_tokenizer(dir);

    /* The object form, and no added tokens at all, still load. */
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256",
                         "{\"added_tokens_decoder\": {\"257\": {\"content\": \"<x>\", "
                         "\"special\": true}}}");
    tokenizer *tok;
    kpo_error err;
    assert_int_equal(tokenizer_load(&tok, dir, &err), KPO_OK);
    assert_int_equal(tokenizer_token_id(tok, "<x>"), 257);
    tokenizer_free(tok);
    remove_tiny_tokenizer(dir);
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256", NULL);
    assert_int_equal(tokenizer_load(&tok, dir, &err), KPO_OK);
    assert_int_equal(tokenizer_vocab_size(tok), 257);
    tokenizer_free(tok);
    remove_tiny_tokenizer(dir);
}

/* Issue 17: two tokens under one id were accepted and did not round-trip. */
static void test_shared_ids_rejected(void **state)
{
    (void)state;
    char dir[64];
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256, \"cd\": 256", NULL);
    const char *vocab_needles[] = {"vocab.json", "\"ab\"", "\"cd\"", "256"};
    assert_load_fails(dir, vocab_needles, 4);
    remove_tiny_tokenizer(dir);
    /* a byte's id reused */
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 97", NULL);
    const char *byte_needles[] = {"\"a\"", "\"ab\"", "id 97"};
    assert_load_fails(dir, byte_needles, 3);
    remove_tiny_tokenizer(dir);
    /* one string twice (a repeated JSON key) */
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256, \"ab\": 257", NULL);
    const char *twice_needles[] = {"\"ab\"", "twice"};
    assert_load_fails(dir, twice_needles, 2);
    remove_tiny_tokenizer(dir);
    /* an added token under a vocabulary token's id */
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256",
                         "{\"added_tokens_decoder\": {\"256\": {\"content\": \"<x>\"}}}");
    const char *added_needles[] = {"tokenizer_config.json", "<x>", "256", "ab"};
    assert_load_fails(dir, added_needles, 4);
    remove_tiny_tokenizer(dir);
    /* restating the same string under its own id stays allowed */
    write_tiny_tokenizer(dir, sizeof dir, "\"ab\": 256",
                         "{\"added_tokens_decoder\": {\"256\": {\"content\": \"ab\"}}}");
    tokenizer *tok;
    kpo_error err;
    assert_int_equal(tokenizer_load(&tok, dir, &err), KPO_OK);
    tokenizer_free(tok);
    remove_tiny_tokenizer(dir);
}

/* Feeding "é€😀" one byte at a time never emits half a character. */
static void test_stream_decoder(void **state)
{
    (void)state;
    static const char text[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    utf8_stream st;
    utf8_stream_init(&st);
    text_buf out;
    text_buf_init(&out);
    size_t emitted[sizeof text];
    for (size_t k = 0; k + 1 < sizeof text; k++) {
        utf8_stream_push(&st, text + k, 1, &out);
        emitted[k] = out.len;
    }
    utf8_stream_flush(&st, &out);
    assert_int_equal(out.len, sizeof text - 1);
    assert_memory_equal(out.data, text, sizeof text - 1);
    /* after 'a', then é is held until its 2nd byte, € until its 3rd ... */
    const size_t expect[] = {1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};
    for (size_t k = 0; k < sizeof expect / sizeof expect[0]; k++)
        assert_int_equal(emitted[k], expect[k]);
    /* Invalid bytes pass through; a cut character is flushed at the end. */
    text_buf_clear(&out);
    utf8_stream_push(&st, "\xff" "b\xe2\x82", 4, &out);
    assert_int_equal(out.len, 2);
    utf8_stream_push(&st, "x", 1, &out); /* the held prefix can no longer complete */
    assert_int_equal(out.len, 5);
    utf8_stream_push(&st, "\xe2", 1, &out);
    utf8_stream_flush(&st, &out);
    assert_int_equal(out.len, 6);
    text_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_world),
        cmocka_unit_test(test_digits_split_one_by_one),
        cmocka_unit_test(test_round_trips_of_hard_text),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_enormous_line),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_chat_template),
        cmocka_unit_test(test_round_trip_math500),
        cmocka_unit_test(test_round_trip_aime),
        cmocka_unit_test(test_byte_tokenizer),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_added_tokens_decoder_array),
        cmocka_unit_test(test_shared_ids_rejected),
        cmocka_unit_test(test_stream_decoder),
    };
    return cmocka_run_group_tests(tests, load_qwen, free_qwen);
}
