/* The file and directory helpers of file_util.h. */
#include "core/file_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

int file_make_dirs(const char *path, kpo_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return error_set(err, "%s: path too long", path);
    /* Walk the separators so each prefix exists before its child. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0 && !(errno == EEXIST && stat(buf, &st) == 0 &&
                                       S_ISDIR(st.st_mode)))
            return error_set(err, "%s: cannot create directory: %s", buf,
                             errno == EEXIST ? "exists and is not a directory" : strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    return KPO_OK;
}

int file_sync_path(const char *path, kpo_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return error_set(err, "%s: cannot open to sync: %s", path, strerror(errno));
    int failed = fsync(fd) != 0;
    int saved = errno;
    close(fd);
    /* Some file systems refuse fsync on directories; the data is still there. */
    if (failed && saved != EINVAL && saved != EROFS)
        return error_set(err, "%s: fsync failed: %s", path, strerror(saved));
    return KPO_OK;
}

int file_sync_dir_files(const char *dir, kpo_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return error_set(err, "%s: cannot open directory: %s", dir, strerror(errno));
    int status = KPO_OK;
    for (struct dirent *e; status == KPO_OK && (e = readdir(d)) != NULL;) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
            status = file_sync_path(path, err);
    }
    closedir(d);
    return status == KPO_OK ? file_sync_path(dir, err) : status;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int file_remove_tree(const char *path, kpo_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? KPO_OK : error_set(err, "%s: %s", path, strerror(errno));
    /* Depth first so directories are empty when their turn comes. */
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return error_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return KPO_OK;
}
