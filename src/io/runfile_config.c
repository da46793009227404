/* The run file's /config_changes (runfile_config.h): what a resume with
 * run.allow_config_change changed, and from which step. */
#include "io/runfile_config.h"

#include "kpo_config.h"

#if KPO_HAVE_HDF5
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hdf5_util.h"
#include "io/runfile_internal.h"

static const char GROUP[] = "config_changes";

typedef struct stale_names {
    int64_t from_step;
    char names[256][32];
    int n;
} stale_names;

static herr_t collect_stale(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group, (void)info;
    stale_names *stale = data;
    long long step;
    char tail;
    if (sscanf(name, "step-%lld%c", &step, &tail) == 1 && step >= stale->from_step &&
        stale->n < 256 && strlen(name) < sizeof stale->names[0])
        snprintf(stale->names[stale->n++], sizeof stale->names[0], "%s", name);
    return 0;
}

static int record(hid_t file, int64_t step, const char *changes, const char *config_text,
                  const char *allowed_by)
{
    htri_t exists = H5Lexists(file, GROUP, H5P_DEFAULT);
    if (exists < 0)
        return KPO_ERR;
    if (!exists && !changes) /* nothing recorded, nothing to record */
        return KPO_OK;
    hid_t group = h5u_group(file, GROUP);
    if (group < 0)
        return KPO_ERR;
    stale_names *stale = calloc(1, sizeof *stale);
    int ok = stale != NULL;
    if (ok) {
        stale->from_step = step;
        hsize_t index = 0;
        ok = H5Literate(group, H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect_stale, stale) >= 0;
        for (int k = 0; ok && k < stale->n; k++)
            ok = H5Ldelete(group, stale->names[k], H5P_DEFAULT) >= 0;
    }
    free(stale);
    if (ok && changes) {
        char name[32];
        snprintf(name, sizeof name, "step-%08lld", (long long)step);
        hid_t entry = H5Gcreate2(group, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = entry >= 0 && h5u_write_int_attr(entry, "step", step) == KPO_OK &&
             h5u_write_string_attr(entry, "changes", changes) == KPO_OK &&
             h5u_write_string_attr(entry, "config", config_text ? config_text : "") == KPO_OK &&
             h5u_write_string_attr(entry, "allowed_by", allowed_by ? allowed_by : "") == KPO_OK;
        ok = h5u_close(entry) == KPO_OK && ok;
    }
    ok = h5u_close(group) == KPO_OK && ok;
    return ok ? KPO_OK : KPO_ERR;
}

int runfile_record_config_change(const char *path, int64_t step, const char *changes,
                                 const char *config_text, const char *allowed_by,
                                 kpo_error *err)
{
    hid_t file = runfile_open_hdf5(path, H5F_ACC_RDWR, err);
    if (file < 0)
        return KPO_ERR;
    int status = record(file, step, changes, config_text, allowed_by);
    if (status == KPO_OK && H5Fflush(file, H5F_SCOPE_LOCAL) < 0)
        status = KPO_ERR;
    if (H5Fclose(file) < 0)
        status = KPO_ERR;
    return status == KPO_OK ? KPO_OK
                            : error_set(err, "%s: HDF5 error while recording the config change "
                                             "in /%s", path, GROUP);
}

#else

int runfile_record_config_change(const char *path, int64_t step, const char *changes,
                                 const char *config_text, const char *allowed_by,
                                 kpo_error *err)
{
    (void)step, (void)changes, (void)config_text, (void)allowed_by;
    return error_set(err, "%s: kpo was built without HDF5 (install libhdf5-dev and rebuild)",
                     path);
}

#endif
