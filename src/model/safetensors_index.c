/* Sharded safetensors: reading and writing model.safetensors.index.json. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "model/safetensors.h"

static int open_one(safetensors_set *set, const char *path, kpo_error *err)
{
    safetensors_file *grown = realloc(set->files, (set->n_files + 1) * sizeof *grown);
    if (!grown)
        return error_set(err, "%s: out of memory", path);
    set->files = grown;
    if (safetensors_open(path, &set->files[set->n_files], err) != KPO_OK)
        return KPO_ERR;
    set->n_files++;
    return KPO_OK;
}

static int find_file(const safetensors_set *set, const char *path)
{
    for (size_t k = 0; k < set->n_files; k++)
        if (strcmp(set->files[k].path, path) == 0)
            return (int)k;
    return -1;
}

/* Opens every shard the index names and checks that each tensor lives in
 * the shard the index says and in no other. */
static int open_index(safetensors_set *set, const char *dir, const char *index_path,
                      kpo_error *err)
{
    char *text = NULL;
    if (file_read_all(index_path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int status = KPO_OK;
    if (!cJSON_IsObject(map))
        status = error_set(err, "%s: missing the 'weight_map' object", index_path);
    const cJSON *item;
    char path[4096];
    cJSON_ArrayForEach(item, map)
    {
        if (status != KPO_OK)
            break;
        if (!cJSON_IsString(item) || strchr(item->valuestring, '/')) {
            status = error_set(err, "%s: tensor '%s': shard must be a file name in %s",
                               index_path, item->string, dir);
            break;
        }
        snprintf(path, sizeof path, "%s/%s", dir, item->valuestring);
        if (find_file(set, path) < 0)
            status = open_one(set, path, err);
        if (status != KPO_OK)
            break;
        const safetensors_file *holder = NULL;
        const safetensors_tensor *t = safetensors_set_find(set, item->string, &holder);
        if (!t || strcmp(holder->path, path) != 0)
            status = error_set(err, "%s: tensor '%s': the index names shard %s but it is not there",
                               index_path, item->string, path);
    }
    for (size_t a = 0; a < set->n_files && status == KPO_OK; a++)
        for (size_t k = 0; k < set->files[a].n_tensors && status == KPO_OK; k++) {
            const char *name = set->files[a].tensors[k].name;
            for (size_t b = a + 1; b < set->n_files && status == KPO_OK; b++)
                if (safetensors_find(&set->files[b], name))
                    status = error_set(err, "%s: tensor '%s' is in both %s and %s", index_path,
                                       name, set->files[a].path, set->files[b].path);
        }
    cJSON_Delete(root);
    return status;
}

int safetensors_set_open(const char *dir, safetensors_set *set, kpo_error *err)
{
    memset(set, 0, sizeof *set);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int status;
    if (file_exists(path)) {
        status = open_one(set, path, err);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (file_exists(path))
            status = open_index(set, dir, path, err);
        else
            status = error_set(err, "%s: no model.safetensors or model.safetensors.index.json",
                               dir);
    }
    if (status != KPO_OK)
        safetensors_set_close(set);
    return status;
}

void safetensors_set_close(safetensors_set *set)
{
    for (size_t k = 0; k < set->n_files; k++)
        safetensors_close(&set->files[k]);
    free(set->files);
    memset(set, 0, sizeof *set);
}

const safetensors_tensor *safetensors_set_find(const safetensors_set *set, const char *name,
                                               const safetensors_file **file)
{
    for (size_t k = 0; k < set->n_files; k++) {
        const safetensors_tensor *t = safetensors_find(&set->files[k], name);
        if (t) {
            if (file)
                *file = &set->files[k];
            return t;
        }
    }
    return NULL;
}
