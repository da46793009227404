/* libFuzzer: any bytes as a .safetensors file. Opening either fails with a
 * message or yields tensors whose byte ranges lie inside the data section,
 * match shape x dtype and do not overlap; reading each one then stays in
 * bounds (AddressSanitizer watches the mapping and the output buffer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"

static char path[64];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/kpo_fuzz_st_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    safetensors_file file;
    kpo_error err;
    if (safetensors_open(path, &file, &err) != KPO_OK) {
        if (!err.message[0])
            abort(); /* a failure must say why */
        return 0;
    }
    for (size_t k = 0; k < file.n_tensors; k++) {
        const safetensors_tensor *t = &file.tensors[k];
        if (t->begin > t->end || t->end > file.data_size ||
            (uint64_t)(t->end - t->begin) !=
                (uint64_t)t->numel * safetensors_dtype_size(t->dtype) ||
            safetensors_find(&file, t->name) != t)
            abort();
        float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
        if (!out)
            abort();
        safetensors_read_f32(&file, t, out);
        free(out);
    }
    safetensors_close(&file);
    return 0;
}
