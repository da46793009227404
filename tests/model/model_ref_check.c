/* Compares kpo's forward, log-probs, entropies, loss and every parameter
 * gradient with a dump written by tests/reference/qwen3_reference.py.
 * usage: model_ref_check REF_DIR [TOLERANCE]  (REF_DIR/model, batch.json,
 * reference.safetensors). Exit 0 when every tensor is within tolerance. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "model/cpu/model_compute.h"
#include "model_test_util.h"

typedef struct ref_batch {
    int32_t *tokens;
    int64_t *offsets;
    int64_t n_tokens, n_seqs;
    float *dlogp, *dent;
} ref_batch;

static int read_batch(const char *path, ref_batch *b)
{
    char *text;
    kpo_error err;
    if (file_read_all(path, &text, NULL, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *tokens = cJSON_GetObjectItem(root, "tokens");
    const cJSON *lens = cJSON_GetObjectItem(root, "seq_lens");
    const cJSON *dlogp = cJSON_GetObjectItem(root, "dlogp");
    const cJSON *dent = cJSON_GetObjectItem(root, "dentropy");
    b->n_tokens = cJSON_GetArraySize(tokens);
    b->n_seqs = cJSON_GetArraySize(lens);
    b->tokens = malloc((size_t)b->n_tokens * sizeof *b->tokens);
    b->dlogp = malloc((size_t)b->n_tokens * sizeof *b->dlogp);
    b->dent = malloc((size_t)b->n_tokens * sizeof *b->dent);
    b->offsets = malloc((size_t)(b->n_seqs + 1) * sizeof *b->offsets);
    for (int64_t t = 0; t < b->n_tokens; t++) {
        b->tokens[t] = cJSON_GetArrayItem(tokens, (int)t)->valueint;
        b->dlogp[t] = (float)cJSON_GetArrayItem(dlogp, (int)t)->valuedouble;
        b->dent[t] = (float)cJSON_GetArrayItem(dent, (int)t)->valuedouble;
    }
    b->offsets[0] = 0;
    for (int64_t s = 0; s < b->n_seqs; s++)
        b->offsets[s + 1] = b->offsets[s] + cJSON_GetArrayItem(lens, (int)s)->valueint;
    cJSON_Delete(root);
    return 0;
}

static double check(const safetensors_file *ref, const char *name, const float *got, int64_t n)
{
    const safetensors_tensor *t = safetensors_find(ref, name);
    if (!t || t->numel != n) {
        printf("  %s: missing from the reference or of the wrong size\n", name);
        return 1e30;
    }
    float *want = malloc((size_t)n * sizeof *want);
    safetensors_read_f32(ref, t, want);
    double e = test_compare(name, got, want, n);
    free(want);
    return e;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: model_ref_check REF_DIR [TOLERANCE]\n");
        return 2;
    }
    const double tol = argc > 2 ? atof(argv[2]) : 1e-4;
    char path[4096];
    kpo_error err;
    model m;
    snprintf(path, sizeof path, "%s/model", argv[1]);
    if (model_load(path, &m, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    safetensors_file ref;
    snprintf(path, sizeof path, "%s/reference.safetensors", argv[1]);
    if (safetensors_open(path, &ref, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    ref_batch rb;
    snprintf(path, sizeof path, "%s/batch.json", argv[1]);
    if (read_batch(path, &rb) != 0)
        return 1;
    model_batch batch = {rb.tokens, rb.n_tokens, rb.offsets, rb.n_seqs};
    const int64_t T = rb.n_tokens, V = m.config.vocab_size;
    model_acts acts;
    model_weights grads;
    if (model_acts_init(&acts, &m, T, &err) != KPO_OK ||
        model_weights_init(&m, &grads, &err) != KPO_OK ||
        model_forward_train(&m, &batch, &acts, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    float *logits = malloc((size_t)(T * V) * sizeof *logits);
    float *logp = malloc((size_t)T * sizeof *logp), *ent = malloc((size_t)T * sizeof *ent);
    int32_t *targets = malloc((size_t)T * sizeof *targets);
    model_batch_next_targets(&batch, targets);
    model_logits(&m, &acts, logits);
    model_logprobs(&m, &acts, targets, logp, ent);
    double loss = 0;
    for (int64_t t = 0; t < T; t++)
        loss += (double)rb.dlogp[t] * logp[t] + (double)rb.dent[t] * ent[t];
    float loss_f = (float)loss;
    if (model_backward(&m, &acts, targets, rb.dlogp, rb.dent, &grads, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("%s: %lld tokens in %lld sequences, tolerance %.1e\n", argv[1], (long long)T,
           (long long)rb.n_seqs, tol);
    double worst = 0;
    worst = fmax(worst, check(&ref, "logits", logits, T * V));
    worst = fmax(worst, check(&ref, "logprobs", logp, T));
    worst = fmax(worst, check(&ref, "entropy", ent, T));
    worst = fmax(worst, check(&ref, "loss", &loss_f, 1));
    for (size_t k = 0; k < m.n_params_table; k++) {
        char name[128];
        snprintf(name, sizeof name, "grad.%s", m.params[k].name);
        worst = fmax(worst, check(&ref, name, grads.data + m.params[k].offset,
                                  m.params[k].numel));
    }
    printf("worst max rel err %.3e (tolerance %.1e): %s\n", worst, tol,
           worst <= tol ? "PASS" : "FAIL");
    free(logits);
    free(logp);
    free(ent);
    free(targets);
    free(rb.tokens);
    free(rb.offsets);
    free(rb.dlogp);
    free(rb.dent);
    model_weights_free(&grads);
    model_acts_free(&acts);
    safetensors_close(&ref);
    model_free(&m);
    return worst <= tol ? 0 : 1;
}
