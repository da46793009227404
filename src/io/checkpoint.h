/* Training checkpoints: one directory per step, published atomically.
 *
 *   ROOT/step-%08lld/
 *     config.json, model.safetensors   the model, HF F32 (model_save)
 *     optimizer.safetensors            AdamW: exp_avg.<name>, exp_avg_sq.<name>
 *                                      for every parameter, and "step" (F32 [1],
 *                                      as torch stores it)
 *     trainer_state.json               the caller's opaque JSON (kpo train:
 *                                      step, seed, data cursor, resolved config)
 *     tokenizer files, generation_config.json, kpo_model.json
 *                                      when saved with a checkpoint_source, so
 *                                      `kpo eval --model DIR` needs nothing else
 *     manifest.json                    written last: every other file's size and
 *                                      XXH64, which checkpoint_verify checks
 *
 * Everything is written into ROOT/.tmp-step-%08lld-PID/, fsync'ed, and only
 * then renamed to step-%08lld, so a directory with that name is always
 * complete; a crash leaves at most a .tmp directory, which readers ignore and
 * the next save removes. One writer per ROOT (learner rank 0). docs/checkpoints.md
 * has the resume contract. */
#ifndef KPO_IO_CHECKPOINT_H
#define KPO_IO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/model.h"
#include "model/optimizer_adamw.h"

/* Largest step the F32 "step" tensor holds exactly (2^24). */
#define CHECKPOINT_MAX_STEP 16777216LL

/* "ROOT/step-00000042". */
void checkpoint_dir_name(const char *root, int64_t step, char *out, size_t size);

/* Writes step's checkpoint under root (created if missing), replacing an
 * existing one of the same step. keep_last > 0 then deletes the oldest
 * complete checkpoints beyond that many; stale .tmp directories are removed
 * first. */
int checkpoint_save(const char *root, int64_t step, const model *m, const adamw_state *opt,
                    const char *trainer_state_json, int keep_last, kpo_error *err);

/* Where a checkpoint's model came from, so the checkpoint can stand alone
 * (checkpoint_write_tokenizer). */
typedef struct checkpoint_source {
    const char *tokenizer; /* resolved: "byte" or a tokenizer directory */
    const char *model_dir; /* the starting model (its generation_config.json and
                              kpo_model.json are carried over), or NULL */
} checkpoint_source;

/* checkpoint_save that also records the tokenizer (source NULL: records
 * none, as checkpoint_save). */
int checkpoint_save_from(const char *root, int64_t step, const model *m, const adamw_state *opt,
                         const char *trainer_state_json, int keep_last,
                         const checkpoint_source *source, kpo_error *err);

/* Makes the model directory dir self-contained for kpo and HF:
 *  - source->tokenizer's files (vocab.json, merges.txt, tokenizer.json,
 *    tokenizer_config.json, special_tokens_map.json, added_tokens.json,
 *    whichever it has) are copied into dir; "byte" has no files;
 *  - generation_config.json: model_dir's copied, else one whose eos_token_id
 *    is the tokenizer's end of text (and bos_token_id where
 *    tokenizer_config.json names a bos token);
 *  - kpo_model.json: model_dir's (chat/prompt templates, reward) with its
 *    "tokenizer" set to "byte", or removed when the files are now in dir
 *    (train_tokenizer_resolve then finds them in dir itself); written only
 *    when it holds something.
 * Each file is written via a temporary name. */
int checkpoint_write_tokenizer(const char *dir, const checkpoint_source *source, kpo_error *err);

/* The newest complete checkpoint: its directory in dir_out and its step.
 * No checkpoint (or no root) is not an error: *step = -1, dir_out "". */
int checkpoint_find_latest(const char *root, char *dir_out, size_t dir_size, int64_t *step,
                           kpo_error *err);

/* XXH64 of n bytes (the xxHash specification); the manifest's checksum,
 * and a fingerprint for callers (kpo train: its prompts). */
uint64_t checkpoint_hash_bytes(const void *data, size_t n, uint64_t seed);

/* Checks dir against its manifest.json: every file listed is present with
 * its size and XXH64 (sizes of all first, then the checksums). *verified:
 * 1 when it matched, 0 for a checkpoint without a manifest (an older kpo's:
 * accepted unverified, as before). KPO_ERR: err says which file and what
 * is wrong ("model.safetensors is 1200 bytes, the manifest says 2400"),
 * without the directory. */
int checkpoint_verify(const char *dir, int *verified, kpo_error *err);

/* Told about each checkpoint checkpoint_find_verified passes over: its step,
 * directory, and checkpoint_verify's reason. */
typedef void (*checkpoint_skip_fn)(void *ctx, int64_t step, const char *dir, const char *why);

/* The newest checkpoint that passes checkpoint_verify (newest first; each
 * newer one that fails goes to skipped, which may be NULL). No checkpoint
 * (or no root): *step = -1, not an error. Checkpoints that all fail:
 * KPO_ERR naming each and why. *verified as checkpoint_verify's. */
int checkpoint_find_verified(const char *root, char *dir_out, size_t dir_size, int64_t *step,
                             int *verified, checkpoint_skip_fn skipped, void *ctx,
                             kpo_error *err);

/* Restores a checkpoint into an initialised model and optimizer (NULL: the
 * weights only, for a rank that never updates them) whose shapes
 * must match the checkpoint's config.json exactly; weights, moments and the
 * step come back bit for bit. *trainer_state_json (malloc'ed; NULL to skip)
 * receives the caller's JSON. Everything is read and checked before anything
 * is written, so on error m and opt are untouched. */
int checkpoint_load(const char *dir, model *m, adamw_state *opt, char **trainer_state_json,
                    kpo_error *err);

#endif
