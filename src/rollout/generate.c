/* Rollout generation (generate.h): G samples per prompt with the batched
 * KV-cache decoder, each response on its own counter-based stream. */
#include "rollout/generate.h"

#include <stdlib.h>
#include <string.h>

/* One in-flight sequence. */
typedef struct decoding {
    int64_t response; /* index into the output */
    model_backend_stream stream;
    int32_t *tokens;  /* [max_new_tokens] */
    int64_t length;
    int done, stopped;
} decoding;

static int is_stop(const rollout_request *req, int32_t token)
{
    for (int k = 0; k < req->n_stop; k++)
        if (req->stop_ids[k] == token)
            return 1;
    return 0;
}

static void sequence_take(const rollout_request *req, decoding *d, int32_t token)
{
    d->tokens[d->length++] = token;
    if (is_stop(req, token)) {
        d->done = 1;
        d->stopped = 1;
    } else if (d->length >= req->max_new_tokens) {
        d->done = 1;
    }
}

/* Decodes responses [first, first + n) to completion in n KV-cache slots. */
static int generate_chunk(model_backend *b, const rollout_request *req, decoding *seqs,
                          int64_t first, int64_t n, kpo_error *err)
{
    const int64_t vocab = b->m->config.vocab_size, G = req->group_size;
    const int64_t drawable = req->sample_vocab > 0 && req->sample_vocab < vocab ? req->sample_vocab
                                                                                 : vocab;
    int64_t *slots = malloc((size_t)n * sizeof *slots), *n_new = malloc((size_t)n * sizeof *n_new);
    model_backend_stream **streams = malloc((size_t)n * sizeof *streams);
    int32_t *drawn = malloc((size_t)n * sizeof *drawn);
    int64_t prompt_total = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t p = (first + i) / G;
        prompt_total += req->prompt_offsets[p + 1] - req->prompt_offsets[p];
    }
    int32_t *feed = malloc((size_t)(prompt_total > n ? prompt_total : n) * sizeof *feed);
    int status = (slots && n_new && streams && drawn && feed)
                     ? KPO_OK
                     : error_set(err, "rollout: out of memory");
    /* Prefill every slot with its prompt. */
    model_backend_decode_reset(b);
    int64_t used = 0;
    for (int64_t i = 0; status == KPO_OK && i < n; i++) {
        int64_t r = first + i, p = r / G;
        int64_t len = req->prompt_offsets[p + 1] - req->prompt_offsets[p];
        slots[i] = i;
        n_new[i] = len;
        memcpy(feed + used, req->prompt_tokens + req->prompt_offsets[p], (size_t)len * sizeof *feed);
        used += len;
        seqs[i].response = r;
        seqs[i].length = 0;
        seqs[i].done = seqs[i].stopped = 0;
        model_backend_stream_init(&seqs[i].stream, req->seed, req->step, req->prompt_ids[p],
                                  r % G);
    }
    int64_t active = n;
    if (status == KPO_OK)
        status = model_backend_decode_step(b, n, slots, n_new, feed, err);
    while (status == KPO_OK) {
        /* Sample from the logits of every active sequence, then feed the
         * ones still running one token each. */
        for (int64_t a = 0; a < active; a++)
            streams[a] = &seqs[slots[a]].stream;
        status = model_backend_decode_sample(b, &req->sampler, req->seed, drawable, active,
                                             streams, drawn, err);
        if (status != KPO_OK)
            break;
        int64_t next = 0;
        for (int64_t a = 0; a < active; a++) {
            decoding *d = &seqs[slots[a]];
            sequence_take(req, d, drawn[a]);
            if (!d->done) {
                slots[next] = slots[a];
                n_new[next] = 1;
                feed[next] = d->tokens[d->length - 1];
                next++;
            }
        }
        active = next;
        if (active == 0)
            break;
        status = model_backend_decode_step(b, active, slots, n_new, feed, err);
    }
    free(slots);
    free(n_new);
    free(streams);
    free(drawn);
    free(feed);
    return status;
}

int rollout_generate(model_backend *b, const rollout_request *req, rollout_responses *out,
                     kpo_error *err)
{
    memset(out, 0, sizeof *out);
    if (sampler_config_validate(&req->sampler, err) != KPO_OK)
        return KPO_ERR;
    if (req->group_size < 1 || req->max_new_tokens < 1 || req->max_batch < 1)
        return error_set(err, "rollout: group size, max_new_tokens and max_batch must be >= 1");
    const int64_t n = req->n_prompts * req->group_size;
    int64_t longest_prompt = 0;
    for (int64_t p = 0; p < req->n_prompts; p++) {
        int64_t len = req->prompt_offsets[p + 1] - req->prompt_offsets[p];
        if (len < 1)
            return error_set(err, "rollout: prompt %lld is empty", (long long)p);
        if (len > longest_prompt)
            longest_prompt = len;
    }
    const int64_t max_len = longest_prompt + req->max_new_tokens;
    int64_t slots = n < req->max_batch ? n : req->max_batch;
    if (slots > 0) {
        slots = model_backend_decode_slots(b, slots, max_len, longest_prompt);
        if (slots < 1)
            return error_set(err, "rollout: not one KV-cache slot of %lld tokens fits in the "
                                  "GPU memory left", (long long)max_len);
    }
    if (model_backend_decode_begin(b, slots, max_len, err) != KPO_OK)
        return KPO_ERR;
    decoding *seqs = calloc((size_t)slots, sizeof *seqs);
    int32_t *token_store = malloc((size_t)(slots * req->max_new_tokens) * sizeof *token_store);
    out->n_responses = n;
    out->offsets = calloc((size_t)n + 1, sizeof *out->offsets);
    out->stopped = calloc((size_t)n + (n == 0), sizeof *out->stopped);
    out->tokens = malloc((size_t)(n * req->max_new_tokens + 1) * sizeof *out->tokens);
    int status = (seqs && token_store && out->offsets && out->stopped && out->tokens)
                     ? KPO_OK
                     : error_set(err, "rollout: out of memory for %lld responses", (long long)n);
    for (int64_t s = 0; s < slots && status == KPO_OK; s++)
        seqs[s].tokens = token_store + s * req->max_new_tokens;
    for (int64_t first = 0; first < n && status == KPO_OK; first += slots) {
        int64_t count = n - first < slots ? n - first : slots;
        status = generate_chunk(b, req, seqs, first, count, err);
        for (int64_t i = 0; i < count && status == KPO_OK; i++) {
            int64_t r = seqs[i].response;
            out->offsets[r + 1] = out->offsets[r] + seqs[i].length;
            memcpy(out->tokens + out->offsets[r], seqs[i].tokens,
                   (size_t)seqs[i].length * sizeof *out->tokens);
            out->stopped[r] = (uint8_t)seqs[i].stopped;
        }
    }
    free(seqs);
    free(token_store);
    model_backend_decode_end(b);
    if (status != KPO_OK)
        rollout_responses_free(out);
    return status;
}

void rollout_responses_free(rollout_responses *r)
{
    free(r->tokens);
    free(r->offsets);
    free(r->stopped);
    memset(r, 0, sizeof *r);
}
