/* Directory helpers for writers that publish a whole directory at once:
 * create parents, make writes durable before a rename publishes them, and
 * remove a tree (used on temporary and retired checkpoint directories). */
#ifndef KPO_IO_FS_UTIL_H
#define KPO_IO_FS_UTIL_H

#include "core/error.h"

/* mkdir -p: creates path and its missing parents; an existing directory is fine. */
int fs_make_dirs(const char *path, kpo_error *err);

/* fsync on a file or a directory (a directory's fsync makes the names it
 * holds durable, which is what a rename into it needs). */
int fs_sync_path(const char *path, kpo_error *err);

/* fsync every regular file directly inside dir, then dir itself. */
int fs_sync_dir_files(const char *dir, kpo_error *err);

/* rm -rf that never follows symlinks; a missing path is not an error. */
int fs_remove_tree(const char *path, kpo_error *err);

#endif
