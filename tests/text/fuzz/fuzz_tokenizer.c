/* libFuzzer: any bytes encode, decode back to themselves, and stream-decode
 * to the same bytes, with the Qwen BPE when its files are there (else the
 * byte tokenizer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

static tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kpo_error err;
    const char *shared = getenv("KPO_SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data/qwen_tokenizer", shared ? shared : "../shared");
    if (tokenizer_load(&tok, dir, &err) != KPO_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s; using the byte tokenizer\n", err.message);
        if (tokenizer_init_bytes(&tok, &err) != KPO_OK)
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kpo_error err;
    id_list ids;
    id_list_init(&ids);
    int flags = size > 0 && (data[0] & 1) ? TOKENIZER_MATCH_SPECIAL : 0;
    if (tokenizer_encode(tok, (const char *)data, size, flags, &ids, &err) != KPO_OK)
        abort();
    text_buf back, streamed;
    text_buf_init(&back);
    text_buf_init(&streamed);
    if (tokenizer_decode(tok, ids.ids, ids.count, &back, &err) != KPO_OK || back.len != size ||
        (size && memcmp(back.data, data, size) != 0))
        abort();
    utf8_stream st;
    utf8_stream_init(&st);
    for (size_t k = 0; k < ids.count; k++) {
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, ids.ids[k], &len);
        utf8_stream_push(&st, bytes, len, &streamed);
    }
    utf8_stream_flush(&st, &streamed);
    if (streamed.len != size || (size && memcmp(streamed.data, data, size) != 0))
        abort();
    text_buf_free(&back);
    text_buf_free(&streamed);
    id_list_free(&ids);
    return 0;
}
