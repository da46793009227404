#include "core/file_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int file_read_all(const char *path, char **text, size_t *length, kpo_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    size_t capacity = 1 << 16, used = 0;
    char *buffer = malloc(capacity);
    while (buffer) {
        if (used + 1 >= capacity) {
            char *grown = realloc(buffer, capacity * 2);
            if (!grown)
                break;
            buffer = grown;
            capacity *= 2;
        }
        size_t n = fread(buffer + used, 1, capacity - used - 1, f);
        used += n;
        if (n == 0)
            break;
    }
    int read_error = ferror(f);
    fclose(f);
    if (!buffer) {
        return error_set(err, "%s: out of memory while reading", path);
    }
    if (read_error) {
        free(buffer);
        return error_set(err, "%s: read error", path);
    }
    buffer[used] = '\0';
    *text = buffer;
    if (length)
        *length = used;
    return KPO_OK;
}

void file_temp_path(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s.tmp.%ld", path, (long)getpid());
}
