/* HF safetensors: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the raw little-endian data.
 * Files are memory-mapped and every offset, length and shape is checked at
 * open so later reads cannot run off the mapping. */
#ifndef KPO_MODEL_SAFETENSORS_H
#define KPO_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum safetensors_dtype {
    SAFETENSORS_F32,
    SAFETENSORS_BF16,
    SAFETENSORS_F16,
} safetensors_dtype;

enum { SAFETENSORS_MAX_RANK = 8 };

typedef struct safetensors_tensor {
    char *name;
    safetensors_dtype dtype;
    int rank;
    int64_t shape[SAFETENSORS_MAX_RANK];
    int64_t numel;
    size_t begin, end; /* byte range inside the data section */
} safetensors_tensor;

typedef struct safetensors_file {
    char *path;
    void *map;
    size_t map_size;
    const uint8_t *data; /* start of the data section, inside map */
    size_t data_size;
    safetensors_tensor *tensors; /* [n_tensors], in header order */
    size_t n_tensors;
} safetensors_file;

int safetensors_open(const char *path, safetensors_file *file, kpo_error *err);
void safetensors_close(safetensors_file *file);
const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name);

/* Converts one tensor to fp32 into out[numel]. */
void safetensors_read_f32(const safetensors_file *file, const safetensors_tensor *tensor,
                          float *out);

const char *safetensors_dtype_name(safetensors_dtype dtype);
size_t safetensors_dtype_size(safetensors_dtype dtype);

/* bf16 keeps fp32's exponent, so conversion is a shift; the narrowing
 * direction rounds to nearest even and keeps NaNs NaN. */
float safetensors_bf16_to_f32(uint16_t bits);
uint16_t safetensors_f32_to_bf16(float value);
float safetensors_f16_to_f32(uint16_t bits);

/* One tensor to write: fp32 data converted on the way out. */
typedef struct safetensors_entry {
    const char *name;
    const float *data; /* [numel] */
    int rank;
    int64_t shape[SAFETENSORS_MAX_RANK];
} safetensors_entry;

/* Writes entries in order (F32 or BF16), via a temporary file renamed into
 * place. */
int safetensors_write(const char *path, const safetensors_entry *entries, size_t n_entries,
                      safetensors_dtype dtype, kpo_error *err);

/* A checkpoint directory: model.safetensors, or the shards named by
 * model.safetensors.index.json. */
typedef struct safetensors_set {
    safetensors_file *files; /* [n_files] */
    size_t n_files;
} safetensors_set;

int safetensors_set_open(const char *dir, safetensors_set *set, kpo_error *err);
void safetensors_set_close(safetensors_set *set);
/* The tensor and the file that holds it, or NULL. */
const safetensors_tensor *safetensors_set_find(const safetensors_set *set, const char *name,
                                               const safetensors_file **file);

#endif
