/* Comparison and batch helpers shared by the model tests. */
#ifndef KPO_TESTS_MODEL_TEST_UTIL_H
#define KPO_TESTS_MODEL_TEST_UTIL_H

#include <stdint.h>

/* Max over elements of |got - want| / max(|want|, floor), floor = 1e-2 *
 * max |want| so that elements that cancel to near zero are judged against
 * the tensor's scale. Prints the tensor's worst element and returns the
 * error. */
double test_compare(const char *name, const float *got, const float *want, int64_t n);


#include "model/model.h"

/* A small random model: heads/kv_heads as given, head_dim 8 != hidden / heads,
 * norm gains perturbed so their gradients are not trivial. */
void test_tiny_model(model *m, int tied, int64_t heads, int64_t kv_heads, uint64_t seed);

/* A fresh directory under TMPDIR (or /tmp); path must hold 256 bytes. */
void test_temp_dir(char *path);
#endif
