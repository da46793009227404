/* The built-in arithmetic task (arith_task.h): generated problems with
 * integer answers, in disjoint train and test splits, as dataset records. */
#include "data/arith_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* One problem in eight goes to the test split. */
enum { ARITH_TEST_MODULUS = 8, ARITH_MAX_OPERANDS = 4 };

static const uint64_t ARITH_STREAM = 0x4152495448ull; /* "ARITH" */

int arith_task_is_test(const char *problem)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)problem; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    return (h ^ (h >> 31)) % ARITH_TEST_MODULUS == 0;
}

/* Operands and operators of one expression, evaluated with * before + -. */
static long long evaluate(const long long *operand, const char *op, int n)
{
    long long total = 0, term = operand[0];
    char pending = '+';
    for (int k = 1; k <= n; k++) {
        if (k < n && op[k - 1] == '*') {
            term *= operand[k];
            continue;
        }
        total += pending == '+' ? term : -term;
        if (k < n) {
            pending = op[k - 1];
            term = operand[k];
        }
    }
    return total;
}

static void draw_problem(rng_stream *rng, int difficulty, char *text, size_t size,
                         long long *answer)
{
    int n = difficulty <= 2 ? 2 : difficulty <= 4 ? 3 : 4;
    long long limit = difficulty == 1 ? 10 : 100;
    int n_ops = difficulty <= 3 ? 2 : 3; /* + - (and * from difficulty 4) */
    long long operand[ARITH_MAX_OPERANDS];
    char op[ARITH_MAX_OPERANDS - 1];
    for (int k = 0; k < n; k++)
        operand[k] = (long long)(rng_uniform(rng) * (double)limit);
    for (int k = 0; k + 1 < n; k++) {
        op[k] = "+-*"[(int)(rng_uniform(rng) * n_ops)];
        if (difficulty == 1)
            op[k] = '+';
    }
    int used = snprintf(text, size, "What is %lld", operand[0]);
    for (int k = 1; k < n && used > 0 && (size_t)used < size; k++)
        used += snprintf(text + used, size - (size_t)used, " %c %lld", op[k - 1], operand[k]);
    if (used > 0 && (size_t)used < size)
        snprintf(text + used, size - (size_t)used, "?");
    *answer = evaluate(operand, op, n);
}

int arith_task_generate(uint64_t seed, arith_split split, uint64_t index, int difficulty,
                        dataset_record *out, kpo_error *err)
{
    if (difficulty < ARITH_MIN_DIFFICULTY || difficulty > ARITH_MAX_DIFFICULTY)
        return error_set(err, "arithmetic difficulty %d is outside [%d, %d]", difficulty,
                         ARITH_MIN_DIFFICULTY, ARITH_MAX_DIFFICULTY);
    rng_stream rng;
    rng_stream_init(&rng, seed, rng_stream_id(ARITH_STREAM, split, index));
    char text[128], answer_text[32];
    long long answer;
    /* Rejection: draw until the problem's own hash puts it in this split.
     * Difficulty 1 has only 100 problems, so some draws repeat there. */
    for (int attempt = 0; attempt < 10000; attempt++) {
        draw_problem(&rng, difficulty, text, sizeof text, &answer);
        if (arith_task_is_test(text) == (split == ARITH_TEST)) {
            snprintf(answer_text, sizeof answer_text, "%lld", answer);
            out->problem = strdup(text);
            out->answer = strdup(answer_text);
            out->line = 0;
            if (!out->problem || !out->answer) {
                dataset_record_free(out);
                return error_set(err, "out of memory");
            }
            return KPO_OK;
        }
    }
    return error_set(err, "no arithmetic problem of difficulty %d fell in the %s split",
                     difficulty, split == ARITH_TEST ? "test" : "train");
}

int arith_task_dataset(dataset *ds, uint64_t seed, arith_split split, size_t count,
                       int difficulty, kpo_error *err)
{
    dataset_init(ds);
    for (size_t k = 0; k < count; k++) {
        dataset_record rec;
        if (arith_task_generate(seed, split, k, difficulty, &rec, err) != KPO_OK ||
            dataset_append(ds, &rec, err) != KPO_OK) {
            dataset_free(ds);
            return KPO_ERR;
        }
    }
    return KPO_OK;
}
