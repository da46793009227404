/* Rollout generation (generate.h): G samples per prompt with the batched
 * KV-cache decoder, each response on its own counter-based stream.
 *
 * One loop serves both schedules. A step feeds every busy slot: a slot
 * admitted since the last step gets its whole prompt (a prefill), the
 * others their last sampled token. A response that ends frees its slot at
 * once; the schedule only decides when free slots take the next responses:
 * waves when all of them are free, refill in the very next step. Since each
 * response draws from its own stream, which responses share a step does
 * not change what is drawn (up to the CPU BLAS's shape-dependent rounding:
 * docs/train.md, "Rollout schedule"). */
#include "rollout/generate.h"

#include <stdlib.h>
#include <string.h>

/* One KV-cache slot's sequence. */
typedef struct decoding {
    int64_t response; /* index into the output */
    model_backend_stream stream;
    int32_t *tokens;  /* [max_new_tokens] the response's staging row of the output */
    int64_t length;
    int busy;         /* holds an unfinished response */
    int fresh;        /* admitted since the last step: the next step feeds its prompt */
    int stopped;
} decoding;

/* The state of one rollout_generate call. */
typedef struct decoder {
    model_backend *b;
    const rollout_request *req;
    rollout_responses *out;
    int64_t n_slots, n_responses, next_response, drawable, n_busy;
    decoding *seqs;                 /* [n_slots] */
    int64_t *step_slots, *n_new;    /* [n_slots] the sequences of one step, in slot order */
    model_backend_stream **streams; /* [n_slots] */
    int32_t *drawn;                 /* [n_slots] */
    int32_t *feed;                  /* [n_slots * longest prompt] the step's tokens */
    int64_t *ended;                 /* [n_slots] slots whose response ended in the last step */
} decoder;

static int is_stop(const rollout_request *req, int32_t token)
{
    for (int k = 0; k < req->n_stop; k++)
        if (req->stop_ids[k] == token)
            return 1;
    return 0;
}

/* Appends a drawn token; 1 when the response is complete. */
static int sequence_take(const rollout_request *req, decoding *d, int32_t token)
{
    d->tokens[d->length++] = token;
    d->stopped = is_stop(req, token);
    return d->stopped || d->length >= req->max_new_tokens;
}

static int64_t prompt_length(const rollout_request *req, int64_t p)
{
    return req->prompt_offsets[p + 1] - req->prompt_offsets[p];
}

/* Free slots take the next responses: under waves only once every slot is
 * free (the previous wave has ended), under refill at once. */
static void admit_responses(decoder *d)
{
    if (d->req->schedule == ROLLOUT_WAVES && d->n_busy > 0)
        return;
    const int64_t G = d->req->group_size, max_new = d->req->max_new_tokens;
    for (int64_t s = 0; s < d->n_slots && d->next_response < d->n_responses; s++) {
        decoding *seq = &d->seqs[s];
        if (seq->busy)
            continue;
        const int64_t r = d->next_response++, p = r / G;
        seq->response = r;
        seq->tokens = d->out->tokens + r * max_new;
        seq->length = 0;
        seq->busy = seq->fresh = 1;
        seq->stopped = 0;
        model_backend_stream_init(&seq->stream, d->req->seed, d->req->step,
                                  d->req->prompt_ids[p], r % G);
        d->n_busy++;
    }
}

/* Feeds sequence seq (in slot s) as the step's next one: its prompt when
 * fresh, else its last token. Returns the tokens fed. */
static int64_t feed_sequence(decoder *d, int64_t s, int64_t n_seqs, int64_t used)
{
    const rollout_request *req = d->req;
    decoding *seq = &d->seqs[s];
    d->step_slots[n_seqs] = s;
    d->streams[n_seqs] = &seq->stream;
    if (!seq->fresh) {
        d->feed[used] = seq->tokens[seq->length - 1];
        d->n_new[n_seqs] = 1;
        return 1;
    }
    const int64_t p = seq->response / req->group_size, len = prompt_length(req, p);
    memcpy(d->feed + used, req->prompt_tokens + req->prompt_offsets[p],
           (size_t)len * sizeof *d->feed);
    d->n_new[n_seqs] = len;
    seq->fresh = 0;
    return len;
}

/* Lays out the next step's inputs; returns how many sequences it feeds.
 * Fresh prompts come first (a GPU may run that prefix through its prefill
 * attention), as many as rollout.prefill_tokens allows (always at least
 * one: a prompt longer than the budget goes alone); the others wait, still
 * fresh, for a later step. Then every slot already decoding, one token. */
static int64_t build_step(decoder *d)
{
    const int64_t budget = d->req->prefill_tokens;
    int64_t n_seqs = 0, used = 0;
    for (int64_t s = 0; s < d->n_slots; s++) {
        const decoding *seq = &d->seqs[s];
        if (!seq->busy || !seq->fresh)
            continue;
        const int64_t len = prompt_length(d->req, seq->response / d->req->group_size);
        if (budget > 0 && used > 0 && used + len > budget)
            break;
        used += feed_sequence(d, s, n_seqs++, used);
    }
    for (int64_t s = 0; s < d->n_slots; s++)
        if (d->seqs[s].busy && !d->seqs[s].fresh && d->seqs[s].length > 0)
            used += feed_sequence(d, s, n_seqs++, used);
    return n_seqs;
}

/* Its length and stop flag go to the output; its slot is free again. */
static void finish_response(decoder *d, decoding *seq)
{
    d->out->offsets[seq->response + 1] = seq->length; /* a length until compact_responses */
    d->out->stopped[seq->response] = (uint8_t)seq->stopped;
    seq->busy = 0;
    d->n_busy--;
}

/* One decode step over every busy slot, one token drawn for each. */
static int decode_one_step(decoder *d, kpo_error *err)
{
    const int64_t n_seqs = build_step(d);
    if (model_backend_decode_step(d->b, n_seqs, d->step_slots, d->n_new, d->feed, err) !=
            KPO_OK ||
        model_backend_decode_sample(d->b, &d->req->sampler, d->req->seed, d->drawable, n_seqs,
                                    d->streams, d->drawn, err) != KPO_OK)
        return KPO_ERR;
    d->out->decode_steps++;
    d->out->busy_slot_steps += n_seqs;
    int64_t n_ended = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        decoding *seq = &d->seqs[d->step_slots[i]];
        if (sequence_take(d->req, seq, d->drawn[i])) {
            finish_response(d, seq);
            d->ended[n_ended++] = d->step_slots[i];
        }
    }
    /* An emptied slot's next prefill starts again at position 0. */
    return n_ended ? model_backend_decode_release(d->b, n_ended, d->ended, err) : KPO_OK;
}

static int decode_all(decoder *d, kpo_error *err)
{
    int status = KPO_OK;
    for (admit_responses(d); status == KPO_OK && d->n_busy > 0; admit_responses(d))
        status = decode_one_step(d, err);
    return status;
}

/* Responses were staged in rows of max_new_tokens and finished in any
 * order; packs them back to back, prompt-major (lengths in offsets[r + 1]
 * become offsets). Each row moves down, never over a row still unread. */
static void compact_responses(rollout_responses *out, int64_t max_new_tokens)
{
    for (int64_t r = 0; r < out->n_responses; r++) {
        const int64_t length = out->offsets[r + 1];
        out->offsets[r + 1] = out->offsets[r] + length;
        memmove(out->tokens + out->offsets[r], out->tokens + r * max_new_tokens,
                (size_t)length * sizeof *out->tokens);
    }
}

static int decoder_init(decoder *d, model_backend *b, const rollout_request *req,
                        rollout_responses *out, int64_t n_slots, int64_t longest_prompt,
                        kpo_error *err)
{
    const int64_t vocab = b->m->config.vocab_size;
    *d = (decoder){.b = b, .req = req, .out = out, .n_slots = n_slots,
                   .n_responses = out->n_responses,
                   .drawable = req->sample_vocab > 0 && req->sample_vocab < vocab
                                   ? req->sample_vocab
                                   : vocab};
    const size_t slots = (size_t)n_slots;
    d->seqs = calloc(slots, sizeof *d->seqs);
    d->step_slots = malloc(slots * sizeof *d->step_slots);
    d->n_new = malloc(slots * sizeof *d->n_new);
    d->streams = malloc(slots * sizeof *d->streams);
    d->drawn = malloc(slots * sizeof *d->drawn);
    d->feed = malloc(slots * (size_t)longest_prompt * sizeof *d->feed);
    d->ended = malloc(slots * sizeof *d->ended);
    if (d->seqs && d->step_slots && d->n_new && d->streams && d->drawn && d->feed && d->ended)
        return KPO_OK;
    return error_set(err, "rollout: out of memory for %lld KV-cache slots", (long long)n_slots);
}

static void decoder_free(decoder *d)
{
    free(d->seqs);
    free(d->step_slots);
    free(d->n_new);
    free(d->streams);
    free(d->drawn);
    free(d->feed);
    free(d->ended);
}

/* Checks what the decoder relies on; *longest_prompt sizes the KV cache. */
static int validate_request(const rollout_request *req, int64_t *longest_prompt, kpo_error *err)
{
    if (sampler_config_validate(&req->sampler, err) != KPO_OK)
        return KPO_ERR;
    if (req->group_size < 1 || req->max_new_tokens < 1 || req->max_batch < 1)
        return error_set(err, "rollout: group size, max_new_tokens and max_batch must be >= 1");
    if (req->schedule != ROLLOUT_WAVES && req->schedule != ROLLOUT_REFILL)
        return error_set(err, "rollout: unknown schedule %d", (int)req->schedule);
    *longest_prompt = 0;
    for (int64_t p = 0; p < req->n_prompts; p++) {
        int64_t len = prompt_length(req, p);
        if (len < 1)
            return error_set(err, "rollout: prompt %lld is empty", (long long)p);
        if (len > *longest_prompt)
            *longest_prompt = len;
    }
    return KPO_OK;
}

static int responses_alloc(rollout_responses *out, int64_t n, int64_t max_new_tokens,
                           kpo_error *err)
{
    out->n_responses = n;
    out->offsets = calloc((size_t)n + 1, sizeof *out->offsets);
    out->stopped = calloc((size_t)n + (n == 0), sizeof *out->stopped);
    out->tokens = malloc((size_t)(n * max_new_tokens + 1) * sizeof *out->tokens);
    return out->offsets && out->stopped && out->tokens
               ? KPO_OK
               : error_set(err, "rollout: out of memory for %lld responses", (long long)n);
}

int rollout_generate(model_backend *b, const rollout_request *req, rollout_responses *out,
                     kpo_error *err)
{
    memset(out, 0, sizeof *out);
    int64_t longest_prompt = 0;
    if (validate_request(req, &longest_prompt, err) != KPO_OK)
        return KPO_ERR;
    const int64_t n = req->n_prompts * req->group_size;
    const int64_t max_len = longest_prompt + req->max_new_tokens;
    int64_t slots = n < req->max_batch ? n : req->max_batch;
    if (slots > 0) {
        slots = model_backend_decode_slots(b, slots, max_len, longest_prompt,
                                           req->prefill_tokens);
        if (slots < 1)
            return error_set(err, "rollout: not one KV-cache slot of %lld tokens fits in the "
                                  "GPU memory left", (long long)max_len);
    }
    if (model_backend_decode_begin(b, slots, max_len, err) != KPO_OK)
        return KPO_ERR;
    decoder d = {0};
    int status = responses_alloc(out, n, req->max_new_tokens, err);
    out->slots = slots;
    if (status == KPO_OK && n > 0)
        status = decoder_init(&d, b, req, out, slots, longest_prompt, err);
    if (status == KPO_OK && n > 0)
        status = decode_all(&d, err);
    if (status == KPO_OK)
        compact_responses(out, req->max_new_tokens);
    decoder_free(&d);
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
