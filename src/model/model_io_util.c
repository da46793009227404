/* Atomic file writing for the checkpoint writers (model_io_util.h). */
#include "model/model_io_util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/file_util.h"

FILE *model_io_begin(const char *path, char *temp, size_t temp_size, kpo_error *err)
{
    file_temp_path(path, temp, temp_size);
    FILE *f = fopen(temp, "wb");
    if (!f)
        error_set(err, "%s: cannot create: %s", temp, strerror(errno));
    return f;
}

int model_io_commit(FILE *f, const char *temp, const char *path, kpo_error *err)
{
    int failed = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    int saved = errno;
    if (fclose(f) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        remove(temp);
        return error_set(err, "%s: write failed: %s", path, strerror(saved));
    }
    if (rename(temp, path) != 0) {
        saved = errno;
        remove(temp);
        return error_set(err, "%s: cannot rename into place: %s", path, strerror(saved));
    }
    return KPO_OK;
}

void model_io_abort(FILE *f, const char *temp)
{
    if (f)
        fclose(f);
    remove(temp);
}

int model_io_write_atomic(const char *path, const void *data, size_t size, kpo_error *err)
{
    char temp[4096];
    FILE *f = model_io_begin(path, temp, sizeof temp, err);
    if (!f)
        return KPO_ERR;
    if (fwrite(data, 1, size, f) != size) {
        model_io_abort(f, temp);
        return error_set(err, "%s: write failed", path);
    }
    return model_io_commit(f, temp, path, err);
}
