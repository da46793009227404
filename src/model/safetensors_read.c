/* Reading safetensors files: header validation at open, dtype conversion
 * to float32 on read. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"

const char *safetensors_dtype_name(safetensors_dtype dtype)
{
    switch (dtype) {
    case SAFETENSORS_F32:
        return "F32";
    case SAFETENSORS_BF16:
        return "BF16";
    case SAFETENSORS_F16:
        return "F16";
    }
    return "?";
}

size_t safetensors_dtype_size(safetensors_dtype dtype)
{
    return dtype == SAFETENSORS_F32 ? 4 : 2;
}

float safetensors_bf16_to_f32(uint16_t bits)
{
    uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t safetensors_f32_to_bf16(float value)
{
    uint32_t u;
    memcpy(&u, &value, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u); /* quiet the NaN, keep its sign */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float safetensors_f16_to_f32(uint16_t bits)
{
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu, u;
    if (exponent == 0x1f) {
        u = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent == 0) {
        float f = ldexpf((float)mantissa, -24); /* subnormal or zero: exact */
        memcpy(&u, &f, sizeof u);
        u |= sign;
    } else {
        u = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int parse_dtype(const char *text, safetensors_dtype *out)
{
    static const struct {
        const char *name;
        safetensors_dtype dtype;
    } known[] = {{"F32", SAFETENSORS_F32}, {"BF16", SAFETENSORS_BF16}, {"F16", SAFETENSORS_F16}};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strcmp(text, known[k].name) == 0) {
            *out = known[k].dtype;
            return 1;
        }
    return 0;
}

/* A non-negative JSON integer that fits exactly in a double's mantissa. */
static int json_size(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return 0;
    double v = item->valuedouble;
    if (v < 0 || v != floor(v) || v > 9007199254740992.0)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static int parse_entry(const safetensors_file *file, const cJSON *item, safetensors_tensor *t,
                       kpo_error *err)
{
    const char *path = file->path, *name = item->string;
    if (!cJSON_IsObject(item))
        return error_set(err, "%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return error_set(err, "%s: tensor '%s': missing dtype", path, name);
    if (!parse_dtype(dtype->valuestring, &t->dtype))
        return error_set(err, "%s: tensor '%s': unknown or unsupported dtype '%s' (F32, BF16, F16)",
                         path, name, dtype->valuestring);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > SAFETENSORS_MAX_RANK)
        return error_set(err, "%s: tensor '%s': shape must be an array of at most %d sizes", path,
                         name, SAFETENSORS_MAX_RANK);
    t->rank = 0;
    t->numel = 1;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape)
    {
        int64_t n;
        if (!json_size(dim, &n))
            return error_set(err, "%s: tensor '%s': shape entries must be integers >= 0", path,
                             name);
        if (n > 0 && t->numel > INT64_MAX / 8 / n)
            return error_set(err, "%s: tensor '%s': shape too large", path, name);
        t->shape[t->rank++] = n;
        t->numel *= n;
    }
    int64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_size(cJSON_GetArrayItem(offsets, 0), &begin) ||
        !json_size(cJSON_GetArrayItem(offsets, 1), &end))
        return error_set(err, "%s: tensor '%s': data_offsets must be [begin, end]", path, name);
    if (begin > end || (uint64_t)end > file->data_size)
        return error_set(err,
                         "%s: tensor '%s': data_offsets [%lld, %lld] outside the data section "
                         "(%zu bytes)",
                         path, name, (long long)begin, (long long)end, file->data_size);
    if ((uint64_t)(end - begin) != (uint64_t)t->numel * safetensors_dtype_size(t->dtype))
        return error_set(err,
                         "%s: tensor '%s': data_offsets span %lld bytes but shape and dtype %s "
                         "need %lld",
                         path, name, (long long)(end - begin), dtype->valuestring,
                         (long long)(t->numel * (int64_t)safetensors_dtype_size(t->dtype)));
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    t->name = strdup(name);
    return t->name ? KPO_OK : error_set(err, "%s: out of memory", path);
}

static int compare_begin(const void *a, const void *b)
{
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a;
    const safetensors_tensor *y = *(const safetensors_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Two tensors sharing bytes would alias silently when written back. */
static int check_overlaps(const safetensors_file *file, kpo_error *err)
{
    if (file->n_tensors < 2)
        return KPO_OK;
    const safetensors_tensor **order = malloc(file->n_tensors * sizeof *order);
    if (!order)
        return error_set(err, "%s: out of memory", file->path);
    for (size_t k = 0; k < file->n_tensors; k++)
        order[k] = &file->tensors[k];
    qsort(order, file->n_tensors, sizeof *order, compare_begin);
    int status = KPO_OK;
    for (size_t k = 1; k < file->n_tensors && status == KPO_OK; k++)
        if (order[k]->begin < order[k - 1]->end)
            status = error_set(err, "%s: tensors '%s' and '%s' overlap in the data section",
                               file->path, order[k - 1]->name, order[k]->name);
    free(order);
    return status;
}

static int parse_header(safetensors_file *file, const char *text, size_t length, kpo_error *err)
{
    cJSON *root = cJSON_ParseWithLength(text, length);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "%s: header is not a JSON object", file->path);
    }
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) n++;
    file->tensors = calloc(n ? n : 1, sizeof *file->tensors);
    int status = file->tensors ? KPO_OK : error_set(err, "%s: out of memory", file->path);
    cJSON_ArrayForEach(item, root)
    {
        if (status != KPO_OK)
            break;
        if (strcmp(item->string, "__metadata__") == 0)
            continue;
        if (safetensors_find(file, item->string))
            status = error_set(err, "%s: tensor '%s' appears twice", file->path, item->string);
        else if ((status = parse_entry(file, item, &file->tensors[file->n_tensors], err)) == KPO_OK)
            file->n_tensors++;
    }
    cJSON_Delete(root);
    if (status == KPO_OK)
        status = check_overlaps(file, err);
    return status;
}

int safetensors_open(const char *path, safetensors_file *file, kpo_error *err)
{
    memset(file, 0, sizeof *file);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return error_set(err, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return error_set(err, "%s: truncated: %lld bytes, shorter than the 8-byte header length",
                         path, (long long)st.st_size);
    }
    file->map_size = (size_t)st.st_size;
    file->map = mmap(NULL, file->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (file->map == MAP_FAILED) {
        file->map = NULL;
        return error_set(err, "%s: cannot map: %s", path, strerror(errno));
    }
    file->path = strdup(path);
    const uint8_t *bytes = file->map;
    uint64_t header = 0;
    for (int k = 7; k >= 0; k--)
        header = header << 8 | bytes[k];
    int status = KPO_OK;
    if (!file->path)
        status = error_set(err, "%s: out of memory", path);
    else if (header > file->map_size - 8)
        status = error_set(err, "%s: truncated: header length %llu is beyond the file size %zu",
                           path, (unsigned long long)header, file->map_size);
    if (status == KPO_OK) {
        file->data = bytes + 8 + header;
        file->data_size = file->map_size - 8 - (size_t)header;
        status = parse_header(file, (const char *)bytes + 8, (size_t)header, err);
    }
    if (status != KPO_OK)
        safetensors_close(file);
    return status;
}

void safetensors_close(safetensors_file *file)
{
    for (size_t k = 0; k < file->n_tensors; k++)
        free(file->tensors[k].name);
    free(file->tensors);
    if (file->map)
        munmap(file->map, file->map_size);
    free(file->path);
    memset(file, 0, sizeof *file);
}

const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name)
{
    for (size_t k = 0; k < file->n_tensors; k++)
        if (strcmp(file->tensors[k].name, name) == 0)
            return &file->tensors[k];
    return NULL;
}

void safetensors_read_f32(const safetensors_file *file, const safetensors_tensor *tensor,
                          float *out)
{
    /* The data section has no alignment guarantee, hence memcpy. */
    const uint8_t *src = file->data + tensor->begin;
    const int64_t n = tensor->numel;
    if (tensor->dtype == SAFETENSORS_F32) {
        memcpy(out, src, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint16_t bits = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        out[i] = tensor->dtype == SAFETENSORS_BF16 ? safetensors_bf16_to_f32(bits)
                                                   : safetensors_f16_to_f32(bits);
    }
}
