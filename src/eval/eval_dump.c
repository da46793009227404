/* kpo eval --dump: gathering every rank's response lines onto rank 0 in a
 * rank-independent order, and writing them atomically (eval_dump.h). */
#include "eval/eval_dump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_world.h"
#include "core/file_util.h"
#include "tokenizer/utf8.h"

void eval_dump_clean_text(const char *text, size_t n, text_buf *out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_sequence_length(s + i, n - i);
        if (len == 0 || s[i] == 0) {
            utf8_append(out, 0xFFFD);
            i++;
        } else {
            text_buf_append(out, text + i, len);
            i += len;
        }
    }
}

/* The byte just past the next `lines` newlines from at, or -1. */
static int64_t skip_lines(const char *data, int64_t len, int64_t at, int64_t lines)
{
    while (lines-- > 0) {
        const char *nl = at < len ? memchr(data + at, '\n', (size_t)(len - at)) : NULL;
        if (!nl)
            return -1;
        at = nl - data + 1;
    }
    return at;
}

int eval_dump_order(const char *const *parts, const int64_t *parts_len, int n_ranks,
                    int64_t n_problems, int64_t per_chunk, int64_t k, text_buf *out,
                    kpo_error *err)
{
    int64_t *cursor = calloc((size_t)n_ranks, sizeof *cursor);
    if (!cursor)
        return error_set(err, "--dump: out of memory");
    int status = KPO_OK;
    for (int64_t c = 0; status == KPO_OK && c * per_chunk < n_problems; c++) {
        const int r = (int)(c % n_ranks);
        const int64_t first = c * per_chunk;
        const int64_t count = n_problems - first < per_chunk ? n_problems - first : per_chunk;
        const int64_t end = skip_lines(parts[r], parts_len[r], cursor[r], count * k);
        if (end < 0) {
            status = error_set(err, "--dump: rank %d sent too few lines for chunk %lld", r,
                               (long long)c);
            break;
        }
        text_buf_append(out, parts[r] + cursor[r], (size_t)(end - cursor[r]));
        cursor[r] = end;
    }
    for (int r = 0; status == KPO_OK && r < n_ranks; r++)
        if (cursor[r] != parts_len[r])
            status = error_set(err, "--dump: rank %d sent lines beyond its chunks", r);
    free(cursor);
    if (status == KPO_OK && out->failed)
        status = error_set(err, "--dump: out of memory");
    return status;
}

int eval_dump_gather(const text_buf *mine, const eval_bench *b, const eval_sampling *s, int rank,
                     int n_ranks, text_buf *out, kpo_error *err)
{
    char **parts = NULL;
    int64_t *lens = NULL;
    int status = comm_world_gather_bytes(mine->data ? mine->data : "", (int64_t)mine->len,
                                        rank == 0 ? &parts : NULL, rank == 0 ? &lens : NULL, err);
    if (status == KPO_OK && rank == 0)
        status = eval_dump_order((const char *const *)parts, lens, n_ranks, b->prompts.n,
                                 eval_chunk_problems(s), s->k, out, err);
    if (parts)
        for (int r = 0; r < n_ranks; r++)
            free(parts[r]);
    free(parts);
    free(lens);
    return status == KPO_OK ? KPO_OK : error_prefix(err, "benchmark %s: ", b->name);
}

int eval_dump_write(const char *path, const text_buf *benches, size_t n, kpo_error *err)
{
    char temp[4200];
    file_temp_path(path, temp, sizeof temp);
    FILE *f = fopen(temp, "wb");
    if (!f)
        return error_set(err, "--dump %s: cannot create %s: %s", path, temp, strerror(errno));
    int ok = 1;
    for (size_t j = 0; ok && j < n; j++)
        ok = benches[j].len == 0 || fwrite(benches[j].data, 1, benches[j].len, f) == benches[j].len;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    const int saved = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(temp);
        return error_set(err, "--dump %s: writing %s failed: %s", path, temp, strerror(saved));
    }
    /* link() refuses an existing name: a dump is never replaced, and the
     * name holds either nothing or the whole file. */
    if (link(temp, path) != 0) {
        const int e = errno;
        unlink(temp);
        return error_set(err, "--dump %s: %s", path,
                         e == EEXIST ? "already exists; refusing to overwrite it" : strerror(e));
    }
    unlink(temp);
    return KPO_OK;
}
