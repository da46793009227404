/* Math datasets: JSONL records to (problem, answer), gold answers as text,
 * and the seeded per-epoch order. */
#include "data/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/jsonl_reader.h"

void dataset_init(dataset *ds)
{
    memset(ds, 0, sizeof *ds);
}

void dataset_record_free(dataset_record *rec)
{
    free(rec->problem);
    free(rec->answer);
    rec->problem = rec->answer = NULL;
}

void dataset_free(dataset *ds)
{
    for (size_t k = 0; k < ds->count; k++)
        dataset_record_free(&ds->records[k]);
    free(ds->records);
    dataset_init(ds);
}

int dataset_append(dataset *ds, dataset_record *rec, kpo_error *err)
{
    if ((ds->count & (ds->count - 1)) == 0) { /* grow at powers of two */
        size_t capacity = ds->count ? ds->count * 2 : 16;
        dataset_record *grown = realloc(ds->records, capacity * sizeof *grown);
        if (!grown) {
            dataset_record_free(rec);
            return error_set(err, "out of memory");
        }
        ds->records = grown;
    }
    ds->records[ds->count++] = *rec;
    return KPO_OK;
}

/* verl-format rows keep the prompt as a chat: [{"role": "user", "content": ...}]. */
static const char *chat_user_content(const cJSON *messages)
{
    const char *content = NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0 &&
            cJSON_IsString(text))
            content = text->valuestring;
    }
    return content;
}

/* "a.b" looks up nested objects, so reward_model.ground_truth works. */
static const cJSON *get_field(const cJSON *obj, const char *name)
{
    char part[256];
    while (obj && *name) {
        size_t len = strcspn(name, ".");
        if (len >= sizeof part)
            return NULL;
        memcpy(part, name, len);
        part[len] = '\0';
        obj = cJSON_GetObjectItemCaseSensitive(obj, part);
        name += len + (name[len] == '.');
    }
    return obj;
}

/* How many number nodes come before target in a pre-order walk of node
 * (document order: cJSON keeps members and elements as written). Returns
 * true once target is reached. */
static bool count_numbers_before(const cJSON *node, const cJSON *target, size_t *count)
{
    for (; node; node = node->next) {
        if (node == target)
            return true;
        if (cJSON_IsNumber(node))
            (*count)++;
        if (node->child && count_numbers_before(node->child, target, count))
            return true;
    }
    return false;
}

/* The text of the index-th number token of a JSON document, or NULL. The
 * tokens are found by skipping strings: outside them only numbers hold '-'
 * or digits, and a number runs over exactly the characters cJSON's own
 * number parser takes (the document parsed, so the run is the token). */
static char *number_token(const char *text, size_t len, size_t index)
{
    size_t k = 0, seen = 0;
    while (k < len) {
        char c = text[k];
        if (c == '"') {
            for (k++; k < len && text[k] != '"'; k++)
                if (text[k] == '\\')
                    k++;
            k++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t start = k;
            while (k < len && strchr("0123456789+-.eE", text[k]) && text[k] != '\0')
                k++;
            if (seen++ == index) {
                char *token = malloc(k - start + 1);
                if (token) {
                    memcpy(token, text + start, k - start);
                    token[k - start] = '\0';
                }
                return token;
            }
        } else {
            k++;
        }
    }
    return NULL;
}

/* Shortest %g form that reads back as the same double ("0.1", not %.17g's
 * 0.10000000000000001), for records with no source text to quote. */
static void shortest_number(double v, char *out, size_t size)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* A gold answer as text. Numbers keep the text they were written with
 * (0.1, 1e-3, 2.50, -0, 12345678901234567890): reprinting the parsed double
 * would change what the grader compares against. Without the line's text,
 * integers print without a point and others in their shortest exact form. */
static char *value_text(const cJSON *root, const cJSON *v, const char *text, size_t len)
{
    char number[64];
    if (cJSON_IsString(v))
        return strdup(v->valuestring);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return NULL;
    if (text) {
        size_t index = 0;
        if (count_numbers_before(root, v, &index)) {
            char *token = number_token(text, len, index);
            if (token)
                return token;
        }
    }
    /* AIME stores 25 as a number: print integers without a decimal point. */
    if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e15)
        snprintf(number, sizeof number, "%.0f", v->valuedouble);
    else
        shortest_number(v->valuedouble, number, sizeof number);
    return strdup(number);
}

int dataset_record_from_json(const cJSON *obj, const dataset_options *opt, dataset_record *out,
                             kpo_error *err)
{
    return dataset_record_from_line(obj, NULL, 0, opt, out, err);
}

int dataset_record_from_line(const cJSON *obj, const char *text, size_t len,
                             const dataset_options *opt, dataset_record *out, kpo_error *err)
{
    const char *problem_name = opt && opt->problem_field ? opt->problem_field : NULL;
    const char *answer_name = opt && opt->answer_field ? opt->answer_field : NULL;
    /* Without a configured name, the MATH/AIME name first, then DAPO/verl's. */
    const cJSON *problem = get_field(obj, problem_name ? problem_name : "problem");
    if (!problem && !problem_name && (problem = get_field(obj, "prompt")))
        problem_name = "prompt";
    const cJSON *answer = get_field(obj, answer_name ? answer_name : "answer");
    if (!answer && !answer_name && (answer = get_field(obj, "reward_model.ground_truth")))
        answer_name = "reward_model.ground_truth";
    if (!problem)
        return error_set(err, "field '%s' is missing", problem_name ? problem_name : "problem");
    if (!answer)
        return error_set(err, "field '%s' is missing", answer_name ? answer_name : "answer");
    if (!problem_name)
        problem_name = "problem";
    if (!answer_name)
        answer_name = "answer";
    const char *problem_text = cJSON_IsString(problem) ? problem->valuestring
                               : cJSON_IsArray(problem) ? chat_user_content(problem)
                                                        : NULL;
    if (!problem_text)
        return error_set(err, "field '%s' is not a string (or a chat with a user turn)",
                         problem_name);
    if (problem_text[0] == '\0')
        return error_set(err, "field '%s' is empty", problem_name);
    out->problem = strdup(problem_text);
    out->answer = value_text(obj, answer, text, len);
    out->line = 0;
    if (!out->answer || out->answer[0] == '\0' || !out->problem) {
        int empty = out->answer && out->answer[0] == '\0';
        dataset_record_free(out);
        return error_set(err, "field '%s' is %s", answer_name,
                         empty ? "empty" : "not a string or a finite number");
    }
    return KPO_OK;
}

int dataset_load(dataset *ds, const char *path, const dataset_options *opt, kpo_error *err)
{
    dataset_init(ds);
    jsonl_reader reader;
    bool skip_bad = opt && opt->skip_bad;
    if (jsonl_open(&reader, path, skip_bad, err) != KPO_OK)
        return KPO_ERR;
    int status = KPO_OK, got;
    cJSON *obj;
    while (status == KPO_OK && (got = jsonl_next(&reader, &obj, err)) == 1) {
        dataset_record rec;
        kpo_error field_err;
        /* The reader's buffer still holds the line obj was parsed from
         * (NUL-free: the reader refuses lines with a NUL byte). */
        if (dataset_record_from_line(obj, reader.buffer, strlen(reader.buffer), opt, &rec,
                                     &field_err) == KPO_OK) {
            rec.line = reader.line;
            status = dataset_append(ds, &rec, err);
        } else if (!skip_bad) {
            status = error_set(err, "%s:%ld: %s", path, reader.line, field_err.message);
        } else if (reader.n_skipped++ == 0) {
            error_set(&reader.first_skipped, "%s:%ld: %s", path, reader.line,
                      field_err.message);
        }
        cJSON_Delete(obj);
    }
    if (status == KPO_OK && got < 0)
        status = KPO_ERR;
    ds->n_skipped = reader.n_skipped;
    ds->first_skipped = reader.first_skipped;
    jsonl_close(&reader);
    if (status == KPO_OK && ds->count == 0)
        status = error_set(err, "%s: no records", path);
    if (status != KPO_OK)
        dataset_free(ds);
    return status;
}

/* Uniform integer in [0, bound) without modulo bias (Lemire's method). */
static uint32_t uniform_below(rng_stream *rng, uint32_t bound)
{
    uint64_t m = (uint64_t)rng_next_u32(rng) * bound;
    if ((uint32_t)m < bound) {
        uint32_t threshold = (uint32_t)(-bound) % bound;
        while ((uint32_t)m < threshold)
            m = (uint64_t)rng_next_u32(rng) * bound;
    }
    return (uint32_t)(m >> 32);
}

/* Tag separating the shuffle's streams from every other user of the seed. */
static const uint64_t SHUFFLE_STREAM = 0x5348554646ull; /* "SHUFF" */

void dataset_shuffle(size_t *order, size_t n, uint64_t seed, uint64_t epoch)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, rng_stream_id(SHUFFLE_STREAM, epoch, 0));
    for (size_t k = 0; k < n; k++)
        order[k] = k;
    for (size_t k = n; k > 1; k--) {
        size_t j = uniform_below(&rng, (uint32_t)k);
        size_t t = order[k - 1];
        order[k - 1] = order[j];
        order[j] = t;
    }
}
