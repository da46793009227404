/* libFuzzer: the tokenizer loader on any files. Input 'J' + text is a
 * tokenizer.json; anything else is EXTRA \0 MERGES \0 CONFIG, where
 * vocab.json holds every byte token (the loader requires them) plus the
 * JSON members EXTRA, merges.txt is MERGES and tokenizer_config.json is
 * CONFIG. A load either fails with a message or gives a tokenizer under
 * which text, special tokens included, decodes back to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer/text_buf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

static char dir[64];
static text_buf byte_members; /* "\"Ā\": 0, ..." for all 256 bytes */

static void write_file(const char *name, const void *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
}

static void remove_file(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void remove_dir(void)
{
    remove_file("vocab.json");
    remove_file("merges.txt");
    remove_file("tokenizer_config.json");
    remove_file("tokenizer.json");
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/kpo_fuzz_tok_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    text_buf_init(&byte_members);
    for (int b = 0; b < 256; b++) {
        uint32_t cp = utf8_byte_to_symbol((unsigned char)b);
        text_buf_append(&byte_members, b ? ", \"" : "\"", b ? 3 : 1);
        if (cp == '"' || cp == '\\')
            text_buf_append(&byte_members, "\\", 1);
        utf8_append(&byte_members, cp);
        char id[16];
        int n = snprintf(id, sizeof id, "\": %d", b);
        text_buf_append(&byte_members, id, (size_t)n);
    }
    if (byte_members.failed)
        abort();
    return 0;
}

/* Text made of the loaded vocabulary's own pieces must round-trip. */
static void check_round_trip(const tokenizer *tok, const char *text, size_t len)
{
    kpo_error err;
    id_list ids;
    id_list_init(&ids);
    if (tokenizer_encode(tok, text, len, TOKENIZER_MATCH_SPECIAL, &ids, &err) != KPO_OK)
        abort();
    text_buf back;
    text_buf_init(&back);
    if (tokenizer_decode(tok, ids.ids, ids.count, &back, &err) != KPO_OK || back.len != len ||
        (len && memcmp(back.data, text, len) != 0))
        abort();
    text_buf_free(&back);
    id_list_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    remove_dir();
    if (mkdir(dir, 0700) != 0)
        abort();
    if (size > 0 && in[0] == 'J') {
        write_file("tokenizer.json", in + 1, size - 1);
    } else {
        const char *end = in + size;
        const char *cut1 = size ? memchr(in, '\0', size) : NULL;
        const char *extra_end = cut1 ? cut1 : end;
        const char *merges = cut1 ? cut1 + 1 : end;
        const char *cut2 = merges < end ? memchr(merges, '\0', (size_t)(end - merges)) : NULL;
        const char *merges_end = cut2 ? cut2 : end;
        text_buf vocab;
        text_buf_init(&vocab);
        text_buf_append(&vocab, "{", 1);
        text_buf_append(&vocab, byte_members.data, byte_members.len);
        if (extra_end > in) {
            text_buf_append(&vocab, ", ", 2);
            text_buf_append(&vocab, in, (size_t)(extra_end - in));
        }
        text_buf_append(&vocab, "}", 1);
        if (vocab.failed)
            abort();
        write_file("vocab.json", vocab.data, vocab.len);
        text_buf_free(&vocab);
        write_file("merges.txt", merges, (size_t)(merges_end - merges));
        if (cut2)
            write_file("tokenizer_config.json", cut2 + 1, (size_t)(end - cut2 - 1));
    }
    tokenizer *tok;
    kpo_error err;
    if (tokenizer_load(&tok, dir, &err) != KPO_OK) {
        if (!err.message[0])
            abort(); /* a failure must say why */
        return 0;
    }
    /* every token's bytes, then all of them run together */
    size_t n = tokenizer_vocab_size(tok);
    text_buf all;
    text_buf_init(&all);
    for (size_t id = 0; id < n && id < 4096; id++) {
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, (int32_t)id, &len);
        if (bytes) {
            check_round_trip(tok, bytes, len);
            text_buf_append(&all, bytes, len);
        }
    }
    check_round_trip(tok, all.data ? all.data : "", all.len);
    text_buf_free(&all);
    tokenizer_free(tok);
    return 0;
}
