/* Writing safetensors files: header JSON, aligned tensor data, atomically. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_io_util.h"
#include "model/safetensors.h"

static int64_t entry_numel(const safetensors_entry *e)
{
    int64_t n = 1;
    for (int d = 0; d < e->rank; d++)
        n *= e->shape[d];
    return n;
}

/* The JSON header, padded with spaces to a multiple of 8 so the data
 * section starts aligned (as HF's writer does). */
static char *build_header(const safetensors_entry *entries, size_t n_entries,
                          safetensors_dtype dtype, size_t *length)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t offset = 0;
    for (size_t k = 0; k < n_entries; k++) {
        cJSON *item = cJSON_AddObjectToObject(root, entries[k].name);
        cJSON_AddStringToObject(item, "dtype", safetensors_dtype_name(dtype));
        cJSON *shape = cJSON_AddArrayToObject(item, "shape");
        for (int d = 0; d < entries[k].rank; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)entries[k].shape[d]));
        size_t bytes = (size_t)entry_numel(&entries[k]) * safetensors_dtype_size(dtype);
        cJSON *offsets = cJSON_AddArrayToObject(item, "data_offsets");
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return NULL;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *length = padded;
    return out;
}

static int write_data(FILE *f, const float *data, int64_t n, safetensors_dtype dtype)
{
    if (dtype == SAFETENSORS_F32)
        return fwrite(data, 4, (size_t)n, f) == (size_t)n;
    uint8_t chunk[8192];
    for (int64_t i = 0; i < n;) {
        size_t m = 0;
        for (; m < sizeof chunk / 2 && i < n; m++, i++) {
            uint16_t bits = safetensors_f32_to_bf16(data[i]);
            chunk[2 * m] = (uint8_t)(bits & 0xff);
            chunk[2 * m + 1] = (uint8_t)(bits >> 8);
        }
        if (fwrite(chunk, 2, m, f) != m)
            return 0;
    }
    return 1;
}

int safetensors_write(const char *path, const safetensors_entry *entries, size_t n_entries,
                      safetensors_dtype dtype, kpo_error *err)
{
    if (dtype != SAFETENSORS_F32 && dtype != SAFETENSORS_BF16)
        return error_set(err, "%s: can only write F32 or BF16", path);
    size_t header_length = 0;
    char *header = build_header(entries, n_entries, dtype, &header_length);
    if (!header)
        return error_set(err, "%s: out of memory building the header", path);
    char temp[4096];
    FILE *f = model_io_begin(path, temp, sizeof temp, err);
    if (!f) {
        free(header);
        return KPO_ERR;
    }
    uint8_t prefix[8];
    for (int k = 0; k < 8; k++)
        prefix[k] = (uint8_t)((uint64_t)header_length >> (8 * k));
    int ok = fwrite(prefix, 1, 8, f) == 8 && fwrite(header, 1, header_length, f) == header_length;
    free(header);
    for (size_t k = 0; k < n_entries && ok; k++)
        ok = write_data(f, entries[k].data, entry_numel(&entries[k]), dtype);
    if (!ok) {
        model_io_abort(f, temp);
        return error_set(err, "%s: write failed", path);
    }
    return model_io_commit(f, temp, path, err);
}
