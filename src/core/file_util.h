/* File and directory helpers shared by every part: whether a path exists,
 * reading a whole file, the temporary name a writer publishes from, and,
 * for writers that publish a whole directory at once, mkdir -p, fsync of
 * files and directories before a rename, and rm -rf (used on temporary and
 * retired checkpoint directories). The one home of these: nothing else
 * creates directories or removes trees by hand. */
#ifndef KPO_CORE_FILE_UTIL_H
#define KPO_CORE_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

bool file_exists(const char *path);

/* Reads a whole file into a NUL-terminated malloc'ed buffer. */
int file_read_all(const char *path, char **text, size_t *length, kpo_error *err);

/* "dir/run.h5" -> "dir/run.h5.tmp.<pid>": where a writer puts a file before
 * renaming it into place, so a reader never sees a half-written one. */
void file_temp_path(const char *path, char *out, size_t size);

/* mkdir -p: creates path and its missing parents; an existing directory is fine. */
int file_make_dirs(const char *path, kpo_error *err);

/* fsync on a file or a directory (a directory's fsync makes the names it
 * holds durable, which is what a rename into it needs). */
int file_sync_path(const char *path, kpo_error *err);

/* fsync every regular file directly inside dir, then dir itself. */
int file_sync_dir_files(const char *dir, kpo_error *err);

/* rm -rf that never follows symlinks; a missing path is not an error. */
int file_remove_tree(const char *path, kpo_error *err);

#endif
