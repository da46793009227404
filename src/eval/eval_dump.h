/* `kpo eval --dump FILE.jsonl` (and the training dump's text clean-up):
 * every sampled response as one JSON line, the same file whatever the
 * number of ranks. Each rank keeps the lines of its own chunks in order;
 * rank 0 gathers them and interleaves them back into chunk order, so the
 * file is ordered by (benchmark as given, problem, sample); it is written
 * under a temporary name and linked into place at the end. */
#ifndef KPO_EVAL_EVAL_DUMP_H
#define KPO_EVAL_EVAL_DUMP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "eval/eval_count.h"
#include "tokenizer/text_buf.h"

/* Appends text[n] to out as valid UTF-8 without NUL: invalid bytes and NUL
 * become U+FFFD, so every line of a dump is well-formed JSON text however
 * wild the sampled bytes were. */
void eval_dump_clean_text(const char *text, size_t n, text_buf *out);

/* Rank 0: the lines of every rank (rank r's bytes at parts[r], parts_len[r]
 * bytes, its chunks' lines in order) put back into chunk order: chunk c
 * (problems [c * per_chunk, ...), k lines each) comes from rank c % n_ranks.
 * Fails, naming the rank, when a part holds too few or too many lines. */
int eval_dump_order(const char *const *parts, const int64_t *parts_len, int n_ranks,
                    int64_t n_problems, int64_t per_chunk, int64_t k, text_buf *out,
                    kpo_error *err);

/* Collective: every rank's dump of benchmark b onto rank 0, ordered into
 * out (eval_dump_order); other ranks' out is left empty. */
int eval_dump_gather(const text_buf *mine, const eval_bench *b, const eval_sampling *s, int rank,
                     int n_ranks, text_buf *out, kpo_error *err);

/* Writes the benchmarks' ordered lines to path: a temporary file, synced,
 * then linked to path (which must not exist; link never replaces). */
int eval_dump_write(const char *path, const text_buf *benches, size_t n, kpo_error *err);

#endif
