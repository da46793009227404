/* Training checkpoints (checkpoint.h): atomic per-step directories, resume,
 * and the tokenizer / generation_config.json that let a checkpoint be used
 * (kpo eval, kpo export, HF) without the model it started from. */
#include "io/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file_util.h"
#include "model/model_io_util.h"
#include "tokenizer/tokenizer.h"

static const char STEP_PREFIX[] = "step-";
static const char TMP_PREFIX[] = ".tmp-step-";
static const char OPTIMIZER_FILE[] = "optimizer.safetensors";
static const char TRAINER_FILE[] = "trainer_state.json";
static const char *const MOMENT_PREFIX[2] = {"exp_avg.", "exp_avg_sq."};
/* What HF's tokenizer loaders read; tokenizer_load needs tokenizer.json or
 * vocab.json + merges.txt (+ tokenizer_config.json's added tokens). */
static const char *const TOKENIZER_FILES[] = {"vocab.json",         "merges.txt",
                                              "tokenizer.json",     "tokenizer_config.json",
                                              "special_tokens_map.json", "added_tokens.json"};
static const char GENERATION_FILE[] = "generation_config.json";
static const char META_FILE[] = "kpo_model.json";
static const char MANIFEST_FILE[] = "manifest.json";
static const char MANIFEST_FORMAT[] = "kpo-checkpoint-manifest";

void checkpoint_dir_name(const char *root, int64_t step, char *out, size_t size)
{
    snprintf(out, size, "%s/%s%08lld", root, STEP_PREFIX, (long long)step);
}

/* "step-00000042" -> 42; anything else (tmp dirs, stray files) -> -1. */
/* dir/name into out; a path too long for the buffer is an error, not a
 * silently different file. */
static int join_path(char *out, size_t size, const char *dir, const char *name, kpo_error *err)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return error_set(err, "%s: path too long", dir);
    return KPO_OK;
}

static int64_t parse_step_name(const char *name)
{
    size_t n = strlen(STEP_PREFIX);
    if (strncmp(name, STEP_PREFIX, n) != 0 || strlen(name + n) < 8 || strlen(name + n) > 18)
        return -1;
    int64_t step = 0;
    for (const char *p = name + n; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        step = step * 10 + (*p - '0');
    }
    return step;
}

static int compare_steps(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Steps of the complete checkpoints under root, ascending; a missing root
 * has none. Stale temporary directories are removed on the way when
 * clean_tmp is set (only the writer does that). */
static int scan_root(const char *root, int clean_tmp, int64_t **steps, size_t *n_steps,
                     kpo_error *err)
{
    *steps = NULL;
    *n_steps = 0;
    DIR *d = opendir(root);
    if (!d)
        return errno == ENOENT ? KPO_OK
                               : error_set(err, "%s: cannot read directory: %s", root,
                                           strerror(errno));
    size_t capacity = 0;
    int status = KPO_OK;
    for (struct dirent *e; status == KPO_OK && (e = readdir(d)) != NULL;) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (clean_tmp && strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            status = file_remove_tree(path, err);
            continue;
        }
        int64_t step = parse_step_name(e->d_name);
        struct stat st;
        if (step < 0 || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*n_steps == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            int64_t *grown = realloc(*steps, capacity * sizeof *grown);
            if (!grown) {
                status = error_set(err, "%s: out of memory listing checkpoints", root);
                break;
            }
            *steps = grown;
        }
        (*steps)[(*n_steps)++] = step;
    }
    closedir(d);
    if (status != KPO_OK) {
        free(*steps);
        *steps = NULL;
        *n_steps = 0;
        return status;
    }
    if (*n_steps > 1) /* with none, *steps is NULL, which qsort may not be given */
        qsort(*steps, *n_steps, sizeof **steps, compare_steps);
    return KPO_OK;
}

int checkpoint_find_latest(const char *root, char *dir_out, size_t dir_size, int64_t *step,
                           kpo_error *err)
{
    int64_t *steps;
    size_t n;
    *step = -1;
    if (dir_size)
        dir_out[0] = '\0';
    if (scan_root(root, 0, &steps, &n, err) != KPO_OK)
        return KPO_ERR;
    if (n > 0) {
        *step = steps[n - 1];
        checkpoint_dir_name(root, *step, dir_out, dir_size);
    }
    free(steps);
    return KPO_OK;
}

/* ---- writing ---- */

static int write_optimizer(const char *path, const model *m, const adamw_state *opt,
                           kpo_error *err)
{
    const size_t n = m->n_params_table;
    safetensors_entry *entries = calloc(2 * n + 1, sizeof *entries);
    char(*names)[128] = calloc(2 * n, sizeof *names);
    if (!entries || !names) {
        free(entries);
        free(names);
        return error_set(err, "%s: out of memory", path);
    }
    for (int which = 0; which < 2; which++) {
        const float *moment = which == 0 ? opt->m : opt->v; /* [n_params] */
        for (size_t k = 0; k < n; k++) {
            const model_param *p = &m->params[k];
            safetensors_entry *e = &entries[which * n + k];
            snprintf(names[which * n + k], sizeof names[0], "%s%s", MOMENT_PREFIX[which],
                     p->name);
            e->name = names[which * n + k];
            e->data = moment + p->offset;
            e->rank = p->rank;
            e->shape[0] = p->shape[0];
            e->shape[1] = p->shape[1];
        }
    }
    /* F32 holds every integer up to 2^24 exactly; save checks the range. */
    const float step_value = (float)opt->step;
    entries[2 * n] = (safetensors_entry){.name = "step", .data = &step_value, .rank = 1,
                                         .shape = {1}};
    int status = safetensors_write(path, entries, 2 * n + 1, SAFETENSORS_F32, err);
    free(entries);
    free(names);
    return status;
}

/* ---- the tokenizer and generation_config.json ---- */

/* A whole file, byte for byte, via a temporary name (so from == to is safe). */
static int copy_file(const char *from, const char *to, kpo_error *err)
{
    char *data;
    size_t length;
    if (file_read_all(from, &data, &length, err) != KPO_OK)
        return KPO_ERR;
    int status = model_io_write_atomic(to, data, length, err);
    free(data);
    return status;
}

static int copy_tokenizer_files(const char *dir, const char *tok_dir, kpo_error *err)
{
    char from[4096], to[4096], vocab[4096], merges[4096], json[4096];
    if (join_path(vocab, sizeof vocab, tok_dir, "vocab.json", err) != KPO_OK ||
        join_path(merges, sizeof merges, tok_dir, "merges.txt", err) != KPO_OK ||
        join_path(json, sizeof json, tok_dir, "tokenizer.json", err) != KPO_OK)
        return KPO_ERR;
    /* Copying a partial set would give a checkpoint whose tokenizer fails
     * only when someone first evaluates it. */
    if (!file_exists(json) && !(file_exists(vocab) && file_exists(merges)))
        return error_set(err, "%s: no tokenizer.json and no vocab.json + merges.txt to record in %s",
                         tok_dir, dir);
    for (size_t k = 0; k < sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0]; k++) {
        if (join_path(from, sizeof from, tok_dir, TOKENIZER_FILES[k], err) != KPO_OK ||
            join_path(to, sizeof to, dir, TOKENIZER_FILES[k], err) != KPO_OK)
            return KPO_ERR;
        if (file_exists(from) && copy_file(from, to, err) != KPO_OK)
            return KPO_ERR;
    }
    return KPO_OK;
}

/* tokenizer_config.json's "bos_token" (a string or {"content": ...}) as an
 * id; -1 when there is none (Qwen3 has none) or the tokenizer lacks it. */
static int32_t find_bos_id(const tokenizer *tok, const char *tok_dir)
{
    char path[4096];
    char *text = NULL;
    if (strcmp(tok_dir, "byte") == 0 ||
        join_path(path, sizeof path, tok_dir, "tokenizer_config.json", NULL) != KPO_OK ||
        !file_exists(path) || file_read_all(path, &text, NULL, NULL) != KPO_OK)
        return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(root, "bos_token");
    if (cJSON_IsObject(bos))
        bos = cJSON_GetObjectItemCaseSensitive(bos, "content");
    int32_t id = cJSON_IsString(bos) ? tokenizer_token_id(tok, bos->valuestring) : -1;
    cJSON_Delete(root);
    return id;
}

/* The starting model's generation_config.json, else one naming the
 * tokenizer's end of text: what HF's generate() and kpo's stop tokens
 * (src/data/stop_tokens.c) read. */
static int write_generation_config(const char *dir, const checkpoint_source *src, kpo_error *err)
{
    char from[4096], to[4096];
    if (join_path(to, sizeof to, dir, GENERATION_FILE, err) != KPO_OK)
        return KPO_ERR;
    if (src->model_dir) {
        if (join_path(from, sizeof from, src->model_dir, GENERATION_FILE, err) != KPO_OK)
            return KPO_ERR;
        if (file_exists(from))
            return copy_file(from, to, err);
    }
    tokenizer *tok;
    if (tokenizer_load(&tok, src->tokenizer, err) != KPO_OK)
        return error_prefix(err, "%s: ", to);
    const int32_t eos = tokenizer_eos_id(tok), bos = find_bos_id(tok, src->tokenizer);
    tokenizer_free(tok);
    cJSON *root = cJSON_CreateObject();
    if (bos >= 0)
        cJSON_AddNumberToObject(root, "bos_token_id", bos);
    if (eos >= 0)
        cJSON_AddNumberToObject(root, "eos_token_id", eos);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int status = text ? model_io_write_atomic(to, text, strlen(text), err)
                      : error_set(err, "%s: out of memory", to);
    free(text);
    return status;
}

/* model_dir's kpo_model.json with "tokenizer" saying where the tokenizer
 * now is: "byte" by name, or absent for the files copied into dir. */
static int write_model_meta(const char *dir, const checkpoint_source *src, kpo_error *err)
{
    char path[4096];
    cJSON *root = NULL;
    if (src->model_dir) {
        if (join_path(path, sizeof path, src->model_dir, META_FILE, err) != KPO_OK)
            return KPO_ERR;
        if (file_exists(path)) {
            char *text;
            if (file_read_all(path, &text, NULL, err) != KPO_OK)
                return KPO_ERR;
            root = cJSON_Parse(text);
            free(text);
            if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return error_set(err, "%s: not a JSON object", path);
            }
        }
    }
    if (!root)
        root = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(root, "tokenizer");
    if (strcmp(src->tokenizer, "byte") == 0)
        cJSON_AddStringToObject(root, "tokenizer", "byte");
    int status = join_path(path, sizeof path, dir, META_FILE, err);
    if (status == KPO_OK && root->child) {
        char *text = cJSON_Print(root);
        status = text ? model_io_write_atomic(path, text, strlen(text), err)
                      : error_set(err, "%s: out of memory", path);
        free(text);
    }
    cJSON_Delete(root);
    return status;
}

int checkpoint_write_tokenizer(const char *dir, const checkpoint_source *source, kpo_error *err)
{
    if (!source || !source->tokenizer || !source->tokenizer[0])
        return error_set(err, "%s: no tokenizer to record", dir);
    if (strcmp(source->tokenizer, "byte") != 0 &&
        copy_tokenizer_files(dir, source->tokenizer, err) != KPO_OK)
        return KPO_ERR;
    if (write_generation_config(dir, source, err) != KPO_OK)
        return KPO_ERR;
    return write_model_meta(dir, source, err);
}

/* ---- the manifest: each file's size and XXH64, checked on resume ---- */

static const uint64_t XXH_P1 = 0x9E3779B185EBCA87ULL, XXH_P2 = 0xC2B2AE3D27D4EB4FULL,
                      XXH_P3 = 0x165667B19E3779F9ULL, XXH_P4 = 0x85EBCA77C2B2AE63ULL,
                      XXH_P5 = 0x27D4EB2F165667C5ULL;

static uint64_t xxh_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_read64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static uint64_t xxh_read32(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XXH_P2;
    return xxh_rotl(acc, 31) * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    acc ^= xxh_round(0, v);
    return acc * XXH_P1 + XXH_P4;
}

/* XXH64 (the xxHash specification, little-endian reads on any host). */
uint64_t checkpoint_hash_bytes(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = seed + XXH_P1 + XXH_P2, v2 = seed + XXH_P2, v3 = seed, v4 = seed - XXH_P1;
        for (; p + 32 <= end; p += 32) {
            v1 = xxh_round(v1, xxh_read64(p));
            v2 = xxh_round(v2, xxh_read64(p + 8));
            v3 = xxh_round(v3, xxh_read64(p + 16));
            v4 = xxh_round(v4, xxh_read64(p + 24));
        }
        h = xxh_rotl(v1, 1) + xxh_rotl(v2, 7) + xxh_rotl(v3, 12) + xxh_rotl(v4, 18);
        h = xxh_merge(xxh_merge(xxh_merge(xxh_merge(h, v1), v2), v3), v4);
    } else {
        h = seed + XXH_P5;
    }
    h += (uint64_t)n;
    for (; p + 8 <= end; p += 8)
        h = xxh_rotl(h ^ xxh_round(0, xxh_read64(p)), 27) * XXH_P1 + XXH_P4;
    if (p + 4 <= end) {
        h = xxh_rotl(h ^ (xxh_read32(p) * XXH_P1), 23) * XXH_P2 + XXH_P3;
        p += 4;
    }
    for (; p < end; p++)
        h = xxh_rotl(h ^ (*p * XXH_P5), 11) * XXH_P1;
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    return h ^ (h >> 32);
}

/* A file's size and XXH64 (seed 0), read through a read-only mapping. */
static int hash_file(const char *path, int64_t *size, uint64_t *hash, kpo_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return error_set(err, "%s: cannot stat: %s", path, strerror(errno));
    }
    *size = (int64_t)st.st_size;
    if (st.st_size == 0) {
        close(fd);
        *hash = checkpoint_hash_bytes("", 0, 0);
        return KPO_OK;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return error_set(err, "%s: cannot map: %s", path, strerror(errno));
    posix_madvise(map, (size_t)st.st_size, POSIX_MADV_SEQUENTIAL);
    *hash = checkpoint_hash_bytes(map, (size_t)st.st_size, 0);
    munmap(map, (size_t)st.st_size);
    return KPO_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* manifest.json: every regular file of dir (sorted by name) with its size
 * and XXH64; written last, so it covers everything the checkpoint holds. */
static int write_manifest(const char *dir, kpo_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return error_set(err, "%s: cannot read directory: %s", dir, strerror(errno));
    char *names[256];
    size_t n = 0;
    int status = KPO_OK;
    for (struct dirent *e; status == KPO_OK && (e = readdir(d)) != NULL;) {
        char path[4096];
        struct stat st;
        if (strcmp(e->d_name, MANIFEST_FILE) == 0 ||
            join_path(path, sizeof path, dir, e->d_name, NULL) != KPO_OK ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == sizeof names / sizeof names[0] || !(names[n] = strdup(e->d_name)))
            status = error_set(err, "%s: too many files for the manifest", dir);
        else
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof names[0], compare_names);
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "format", MANIFEST_FORMAT);
    cJSON_AddStringToObject(root, "hash", "xxh64");
    cJSON_AddItemToObject(root, "files", files);
    for (size_t k = 0; status == KPO_OK && k < n; k++) {
        char path[4096], hex[17];
        int64_t size;
        uint64_t hash;
        status = join_path(path, sizeof path, dir, names[k], err);
        if (status == KPO_OK)
            status = hash_file(path, &size, &hash, err);
        if (status != KPO_OK)
            break;
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "name", names[k]);
        cJSON_AddNumberToObject(entry, "size", (double)size); /* exact below 2^53 */
        cJSON_AddStringToObject(entry, "xxh64", hex);
        cJSON_AddItemToArray(files, entry);
    }
    for (size_t k = 0; k < n; k++)
        free(names[k]);
    char *text = status == KPO_OK ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    char path[4096];
    if (status == KPO_OK && !text)
        status = error_set(err, "%s: out of memory writing the manifest", dir);
    if (status == KPO_OK)
        status = join_path(path, sizeof path, dir, MANIFEST_FILE, err);
    if (status == KPO_OK)
        status = model_io_write_atomic(path, text, strlen(text), err);
    free(text);
    return status;
}

/* One manifest entry against the file: its size, then (when check_hash)
 * its XXH64. */
static int verify_entry(const char *dir, const cJSON *entry, int check_hash, kpo_error *err)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "name");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(entry, "size");
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(entry, "xxh64");
    if (!cJSON_IsString(name) || !cJSON_IsNumber(size) || !cJSON_IsString(hex) ||
        strchr(name->valuestring, '/') || strlen(hex->valuestring) != 16)
        return error_set(err, "%s: an entry lacks a plain name, size or xxh64", MANIFEST_FILE);
    char path[4096];
    if (join_path(path, sizeof path, dir, name->valuestring, err) != KPO_OK)
        return KPO_ERR;
    struct stat st;
    if (stat(path, &st) != 0)
        return error_set(err, "%s is missing", name->valuestring);
    if ((double)st.st_size != size->valuedouble)
        return error_set(err, "%s is %lld bytes, the manifest says %.0f", name->valuestring,
                         (long long)st.st_size, size->valuedouble);
    if (!check_hash)
        return KPO_OK;
    int64_t bytes;
    uint64_t hash;
    if (hash_file(path, &bytes, &hash, err) != KPO_OK)
        return KPO_ERR;
    char got[17];
    snprintf(got, sizeof got, "%016llx", (unsigned long long)hash);
    if (strcmp(got, hex->valuestring) != 0)
        return error_set(err, "%s has checksum xxh64 %s, the manifest says %s", name->valuestring,
                         got, hex->valuestring);
    return KPO_OK;
}

int checkpoint_verify(const char *dir, int *verified, kpo_error *err)
{
    char path[4096];
    *verified = 0;
    if (join_path(path, sizeof path, dir, MANIFEST_FILE, err) != KPO_OK)
        return KPO_ERR;
    if (!file_exists(path))
        return KPO_OK; /* an older kpo's checkpoint: accepted as before, unverified */
    char *text;
    if (file_read_all(path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
    int status = KPO_OK;
    if (!root)
        status = error_set(err, "%s: not valid JSON", MANIFEST_FILE);
    else if (!cJSON_IsString(format) || strcmp(format->valuestring, MANIFEST_FORMAT) != 0 ||
             !cJSON_IsArray(files) || cJSON_GetArraySize(files) == 0)
        status = error_set(err, "%s: not a kpo checkpoint manifest (format, files)",
                           MANIFEST_FILE);
    /* Sizes first: a truncated file is found without reading gigabytes. */
    for (int pass = 0; pass < 2 && status == KPO_OK; pass++)
        for (const cJSON *e = files->child; e && status == KPO_OK; e = e->next)
            status = verify_entry(dir, e, pass == 1, err);
    cJSON_Delete(root);
    if (status == KPO_OK)
        *verified = 1;
    return status;
}

int checkpoint_find_verified(const char *root, char *dir_out, size_t dir_size, int64_t *step,
                             int *verified, checkpoint_skip_fn skipped, void *ctx,
                             kpo_error *err)
{
    int64_t *steps;
    size_t n;
    *step = -1;
    *verified = 0;
    if (dir_size)
        dir_out[0] = '\0';
    if (scan_root(root, 0, &steps, &n, err) != KPO_OK)
        return KPO_ERR;
    char reasons[2048] = "";
    size_t used = 0;
    for (size_t k = n; k-- > 0;) {
        char dir[4096];
        kpo_error why;
        checkpoint_dir_name(root, steps[k], dir, sizeof dir);
        if (checkpoint_verify(dir, verified, &why) == KPO_OK) {
            *step = steps[k];
            snprintf(dir_out, dir_size, "%s", dir);
            break;
        }
        if (skipped)
            skipped(ctx, steps[k], dir, why.message);
        if (used < sizeof reasons)
            used += (size_t)snprintf(reasons + used, sizeof reasons - used, "%s%s%08lld: %s",
                                     used ? "; " : "", STEP_PREFIX, (long long)steps[k],
                                     why.message);
    }
    free(steps);
    if (n > 0 && *step < 0)
        return error_set(err, "%s: no complete checkpoint to resume from (%s)", root, reasons);
    return KPO_OK;
}

static int write_contents(const char *dir, const model *m, const adamw_state *opt,
                          const char *trainer_state_json, const checkpoint_source *source,
                          kpo_error *err)
{
    char path[4096];
    if (mkdir(dir, 0777) != 0)
        return error_set(err, "%s: cannot create directory: %s", dir, strerror(errno));
    if (model_save(m, dir, SAFETENSORS_F32, err) != KPO_OK ||
        join_path(path, sizeof path, dir, OPTIMIZER_FILE, err) != KPO_OK ||
        write_optimizer(path, m, opt, err) != KPO_OK ||
        join_path(path, sizeof path, dir, TRAINER_FILE, err) != KPO_OK ||
        (source && checkpoint_write_tokenizer(dir, source, err) != KPO_OK))
        return KPO_ERR;
    if (model_io_write_atomic(path, trainer_state_json, strlen(trainer_state_json), err) != KPO_OK ||
        write_manifest(dir, err) != KPO_OK)
        return KPO_ERR;
    return file_sync_dir_files(dir, err);
}

/* Moves a published directory out of the namespace readers scan, then
 * deletes it: a crash mid-delete leaves a .tmp dir, never a torn step-. */
static int retire_dir(const char *root, const char *dir, int64_t step, const char *why,
                      kpo_error *err)
{
    char gone[4096];
    snprintf(gone, sizeof gone, "%s/%s%08lld-%ld-%s", root, TMP_PREFIX, (long long)step,
             (long)getpid(), why);
    if (rename(dir, gone) != 0)
        return error_set(err, "%s: cannot move aside: %s", dir, strerror(errno));
    return file_remove_tree(gone, err);
}

static int prune_old(const char *root, int keep_last, kpo_error *err)
{
    int64_t *steps;
    size_t n;
    if (scan_root(root, 0, &steps, &n, err) != KPO_OK)
        return KPO_ERR;
    int status = KPO_OK;
    for (size_t k = 0; status == KPO_OK && k + (size_t)keep_last < n; k++) {
        char dir[4096];
        checkpoint_dir_name(root, steps[k], dir, sizeof dir);
        status = retire_dir(root, dir, steps[k], "old", err);
    }
    free(steps);
    return status == KPO_OK ? file_sync_path(root, err) : status;
}

static int check_save_args(int64_t step, const model *m, const adamw_state *opt,
                           const char *json, kpo_error *err)
{
    if (step < 0 || step > CHECKPOINT_MAX_STEP)
        return error_set(err, "checkpoint: step %lld outside [0, %lld]", (long long)step,
                         CHECKPOINT_MAX_STEP);
    if (opt->step < 0 || opt->step > CHECKPOINT_MAX_STEP)
        return error_set(err, "checkpoint: optimizer step %lld outside [0, %lld]",
                         (long long)opt->step, CHECKPOINT_MAX_STEP);
    if (opt && opt->n_params != m->weights.n_params)
        return error_set(err, "checkpoint: optimizer holds %lld moments, model %lld parameters",
                         (long long)opt->n_params, (long long)m->weights.n_params);
    cJSON *parsed = json ? cJSON_Parse(json) : NULL;
    if (!parsed)
        return error_set(err, "checkpoint: trainer state is not valid JSON");
    cJSON_Delete(parsed);
    return KPO_OK;
}

int checkpoint_save(const char *root, int64_t step, const model *m, const adamw_state *opt,
                    const char *trainer_state_json, int keep_last, kpo_error *err)
{
    return checkpoint_save_from(root, step, m, opt, trainer_state_json, keep_last, NULL, err);
}

int checkpoint_save_from(const char *root, int64_t step, const model *m, const adamw_state *opt,
                         const char *trainer_state_json, int keep_last,
                         const checkpoint_source *source, kpo_error *err)
{
    if (check_save_args(step, m, opt, trainer_state_json, err) != KPO_OK)
        return KPO_ERR;
    int64_t *steps;
    size_t n;
    if (file_make_dirs(root, err) != KPO_OK || scan_root(root, 1, &steps, &n, err) != KPO_OK)
        return KPO_ERR;
    free(steps);
    char tmp[4096], final[4096];
    snprintf(tmp, sizeof tmp, "%s/%s%08lld-%ld", root, TMP_PREFIX, (long long)step,
             (long)getpid());
    checkpoint_dir_name(root, step, final, sizeof final);
    if (write_contents(tmp, m, opt, trainer_state_json, source, err) != KPO_OK) {
        file_remove_tree(tmp, NULL);
        return error_prefix(err, "checkpoint step %lld: ", (long long)step);
    }
    /* rename() cannot replace a non-empty directory: a re-save of the same
     * step first retires the old one (readers then see the previous step). */
    struct stat st;
    int status = KPO_OK;
    if (stat(final, &st) == 0)
        status = retire_dir(root, final, step, "replaced", err);
    if (status == KPO_OK && rename(tmp, final) != 0)
        status = error_set(err, "%s: cannot rename into place: %s", final, strerror(errno));
    if (status != KPO_OK) {
        file_remove_tree(tmp, NULL);
        return KPO_ERR;
    }
    if (file_sync_path(root, err) != KPO_OK)
        return KPO_ERR;
    return keep_last > 0 ? prune_old(root, keep_last, err) : KPO_OK;
}

/* ---- reading ---- */

static int check_config(const char *path, const model_config *got, const model_config *want,
                        kpo_error *err)
{
#define CHECK_FIELD(field, fmt, cast)                                                             \
    if (got->field != want->field)                                                                 \
        return error_set(err, "%s: '" #field "' is " fmt " but the model has " fmt, path,          \
                         (cast)got->field, (cast)want->field);
    CHECK_FIELD(vocab_size, "%lld", long long)
    CHECK_FIELD(hidden_size, "%lld", long long)
    CHECK_FIELD(intermediate_size, "%lld", long long)
    CHECK_FIELD(num_hidden_layers, "%lld", long long)
    CHECK_FIELD(num_attention_heads, "%lld", long long)
    CHECK_FIELD(num_key_value_heads, "%lld", long long)
    CHECK_FIELD(head_dim, "%lld", long long)
    CHECK_FIELD(max_position_embeddings, "%lld", long long)
    CHECK_FIELD(rope_theta, "%.17g", double)
    CHECK_FIELD(rms_norm_eps, "%.17g", double)
    CHECK_FIELD(tie_word_embeddings, "%d", int)
#undef CHECK_FIELD
    return KPO_OK;
}

static int read_moment(const safetensors_file *file, const model_param *p, const char *prefix,
                       float *out, kpo_error *err)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    const safetensors_tensor *t = safetensors_find(file, name);
    if (!t)
        return error_set(err, "%s: tensor '%s' is missing", file->path, name);
    int same = t->rank == p->rank && t->dtype == SAFETENSORS_F32;
    for (int d = 0; same && d < p->rank; d++)
        same = t->shape[d] == p->shape[d];
    if (!same)
        return error_set(err, "%s: tensor '%s' must be F32 with the parameter's shape", file->path,
                         name);
    safetensors_read_f32(file, t, out + p->offset);
    return KPO_OK;
}

static int read_step(const safetensors_file *file, int64_t *step, kpo_error *err)
{
    const safetensors_tensor *t = safetensors_find(file, "step");
    if (!t || t->dtype != SAFETENSORS_F32 || t->numel != 1)
        return error_set(err, "%s: tensor 'step' (F32, one value) is missing or malformed",
                         file->path);
    float value;
    safetensors_read_f32(file, t, &value);
    if (!(value >= 0 && value <= (float)CHECKPOINT_MAX_STEP) || value != (float)(int64_t)value)
        return error_set(err, "%s: 'step' is %g, not a step count", file->path, (double)value);
    *step = (int64_t)value;
    return KPO_OK;
}

/* Both moments and the step into fresh buffers, so a bad file leaves the
 * caller's optimizer as it was. */
static int read_optimizer(const char *path, const model *m, float *mom1, float *mom2,
                          int64_t *step, kpo_error *err)
{
    safetensors_file file;
    if (safetensors_open(path, &file, err) != KPO_OK)
        return KPO_ERR;
    int status = KPO_OK;
    for (size_t k = 0; status == KPO_OK && k < m->n_params_table; k++) {
        status = read_moment(&file, &m->params[k], MOMENT_PREFIX[0], mom1, err);
        if (status == KPO_OK)
            status = read_moment(&file, &m->params[k], MOMENT_PREFIX[1], mom2, err);
    }
    if (status == KPO_OK)
        status = read_step(&file, step, err);
    safetensors_close(&file);
    return status;
}

static int read_trainer_state(const char *path, char **out, kpo_error *err)
{
    char *text;
    if (file_read_all(path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *parsed = cJSON_Parse(text);
    if (!parsed) {
        free(text);
        return error_set(err, "%s: not valid JSON", path);
    }
    cJSON_Delete(parsed);
    *out = text;
    return KPO_OK;
}

int checkpoint_load(const char *dir, model *m, adamw_state *opt, char **trainer_state_json,
                    kpo_error *err)
{
    char path[4096];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return error_set(err, "%s: not a checkpoint directory", dir);
    if (opt && opt->n_params != m->weights.n_params)
        return error_set(err, "%s: optimizer holds %lld moments, model %lld parameters", dir,
                         (long long)opt->n_params, (long long)m->weights.n_params);
    /* model_load validates every tensor; the config must equal ours so the
     * restored weights fit the caller's buffers. */
    model loaded;
    if (model_load(dir, &loaded, err) != KPO_OK)
        return KPO_ERR;
    int status = join_path(path, sizeof path, dir, "config.json", err);
    if (status == KPO_OK)
        status = check_config(path, &loaded.config, &m->config, err);
    const size_t n = (size_t)m->weights.n_params;
    /* Without an optimizer (a rollout-only rank) only the weights are read. */
    const int with_opt = opt != NULL;
    float *mom1 = status == KPO_OK && with_opt ? malloc(n * sizeof *mom1) : NULL; /* [n_params] */
    float *mom2 = status == KPO_OK && with_opt ? malloc(n * sizeof *mom2) : NULL; /* [n_params] */
    if (status == KPO_OK && with_opt && (!mom1 || !mom2))
        status = error_set(err, "%s: out of memory for the optimizer state", dir);
    int64_t step = 0;
    if (status == KPO_OK && with_opt)
        status = join_path(path, sizeof path, dir, OPTIMIZER_FILE, err);
    if (status == KPO_OK && with_opt)
        status = read_optimizer(path, m, mom1, mom2, &step, err);
    char *json = NULL;
    if (status == KPO_OK && trainer_state_json)
        status = join_path(path, sizeof path, dir, TRAINER_FILE, err);
    if (status == KPO_OK && trainer_state_json)
        status = read_trainer_state(path, &json, err);
    if (status == KPO_OK) {
        memcpy(m->weights.data, loaded.weights.data, n * sizeof *m->weights.data);
        if (with_opt) {
            memcpy(opt->m, mom1, n * sizeof *mom1);
            memcpy(opt->v, mom2, n * sizeof *mom2);
            opt->step = step;
        }
        if (trainer_state_json)
            *trainer_state_json = json;
    }
    free(mom1);
    free(mom2);
    model_free(&loaded);
    return status;
}
