/* The built-in arithmetic task (the embedded default's data): generated
 * problems with integer answers, as dataset records. */
#ifndef KPO_DATA_ARITH_TASK_H
#define KPO_DATA_ARITH_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "data/dataset.h"

typedef enum arith_split { ARITH_TRAIN, ARITH_TEST } arith_split;

enum { ARITH_MIN_DIFFICULTY = 1, ARITH_MAX_DIFFICULTY = 5 };

/* Difficulty: 1 = a + b with one-digit numbers, 2 = a +- b below 100,
 * 3 = three operands with + -, 4 = three with + - *, 5 = four with + - *. A problem belongs to the test split iff a hash of its text
 * says so, whatever the seed, so train and test never share a problem; the
 * seed only chooses which problems of each split are drawn. */
int arith_task_generate(uint64_t seed, arith_split split, uint64_t index, int difficulty,
                        dataset_record *out, kpo_error *err);

/* count records (index 0..count-1) into a fresh dataset. */
int arith_task_dataset(dataset *ds, uint64_t seed, arith_split split, size_t count,
                       int difficulty, kpo_error *err);

/* True when the problem text falls in the test split. */
int arith_task_is_test(const char *problem);

#endif
