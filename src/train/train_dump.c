/* run.dump_responses: sampled responses of each step appended to
 * RUN/responses.jsonl, cut back on resume (train_dump.h). */
#include "train/train_dump.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/file_util.h"
#include "eval/eval_dump.h"
#include "tokenizer/text_buf.h"

/* Every line starts with this (cJSON keeps keys in the order added), so a
 * line's step is read without parsing the whole line. */
static const char STEP_KEY[] = "{\"step\":";

/* The step of a line, or -1 when it does not start as ours. */
static int64_t line_step(const char *line, size_t n)
{
    const size_t k = sizeof STEP_KEY - 1;
    if (n <= k || strncmp(line, STEP_KEY, k) != 0)
        return -1;
    char digits[24];
    size_t d = 0;
    while (k + d < n && d < sizeof digits - 1 && line[k + d] >= '0' && line[k + d] <= '9') {
        digits[d] = line[k + d];
        d++;
    }
    digits[d] = '\0';
    return d > 0 && k + d < n && line[k + d] == ',' ? strtoll(digits, NULL, 10) : -1;
}

int train_dump_truncate(const char *path, int64_t step, kpo_error *err)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return error_set(err, "%s: cannot read: %s", path, strerror(errno));
    char temp[4200];
    file_temp_path(path, temp, sizeof temp);
    FILE *out = fopen(temp, "wb");
    if (!out) {
        fclose(in);
        return error_set(err, "%s: cannot create %s: %s", path, temp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ok = 1;
    while (ok && (n = getline(&line, &cap, in)) > 0) {
        int64_t at = line_step(line, (size_t)n);
        /* A line without its newline was cut short by a crash. */
        if (line[n - 1] == '\n' && at >= 0 && at < step)
            ok = fwrite(line, 1, (size_t)n, out) == (size_t)n;
    }
    ok = ok && !ferror(in) && fflush(out) == 0 && fsync(fileno(out)) == 0;
    const int saved = errno;
    free(line);
    fclose(in);
    ok = fclose(out) == 0 && ok;
    if (!ok || rename(temp, path) != 0) {
        const int e = ok ? errno : saved;
        unlink(temp);
        return error_set(err, "%s: cutting back to step %lld failed: %s", path,
                         (long long)step - 1, strerror(e));
    }
    return KPO_OK;
}

/* Does the file need cutting back before step is appended? Reads only its
 * tail: the last line's step, or a missing final newline. */
static int needs_truncate(const char *path, int64_t step, int *needed, kpo_error *err)
{
    *needed = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? KPO_OK : error_set(err, "%s: cannot read: %s", path,
                                                    strerror(errno));
    int status = KPO_OK;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        status = error_set(err, "%s: %s", path, strerror(errno));
    } else if (st.st_size > 0) {
        /* Back from the end, block by block, to the newline before the last line. */
        off_t end = st.st_size, start = 0;
        char last = 0, block[65536];
        fseeko(f, end - 1, SEEK_SET);
        if (fread(&last, 1, 1, f) != 1 || last != '\n') {
            *needed = 1;
        } else {
            off_t pos = end - 1; /* the final newline */
            int found = 0;
            while (!found && pos > 0) {
                off_t from = pos > (off_t)sizeof block ? pos - (off_t)sizeof block : 0;
                size_t len = (size_t)(pos - from);
                fseeko(f, from, SEEK_SET);
                if (fread(block, 1, len, f) != len)
                    break;
                for (size_t i = len; i-- > 0;)
                    if (block[i] == '\n') {
                        start = from + (off_t)i + 1;
                        found = 1;
                        break;
                    }
                pos = from;
            }
            char head[64] = {0};
            fseeko(f, start, SEEK_SET);
            size_t got = fread(head, 1, sizeof head - 1, f);
            int64_t at = line_step(head, got);
            *needed = at < 0 || at >= step;
        }
    }
    fclose(f);
    return status;
}

/* One response's line: keys in a fixed order, "step" first (line_step). */
static int dump_line(train_data *data, const train_settings *s, int64_t step,
                     const rl_batch *b, int64_t r, text_buf *lines, kpo_error *err)
{
    const int G = s->learner.group_size;
    const int64_t pos = b->group[r];
    const int64_t problem = train_data_pick(data, s->seed, step, s->prompts_per_step, pos);
    const int32_t *seq = b->tokens + b->seq_offsets[r];
    const int64_t plen = b->prompt_len[r];
    const int64_t rlen = b->seq_offsets[r + 1] - b->seq_offsets[r] - plen;
    text_buf raw, prompt, response;
    text_buf_init(&raw);
    text_buf_init(&prompt);
    text_buf_init(&response);
    int status = tokenizer_decode(data->tok, seq, (size_t)plen, &raw, err);
    if (status == KPO_OK)
        eval_dump_clean_text(raw.data ? raw.data : "", raw.len, &prompt);
    text_buf_clear(&raw);
    /* The response as the reward read it: without the final stop token. */
    if (status == KPO_OK)
        status = tokenizer_decode(data->tok, seq + plen, (size_t)(rlen - (b->stopped[r] ? 1 : 0)),
                                  &raw, err);
    if (status == KPO_OK)
        eval_dump_clean_text(raw.data ? raw.data : "", raw.len, &response);
    cJSON *o = status == KPO_OK && !prompt.failed && !response.failed && !raw.failed
                   ? cJSON_CreateObject()
                   : NULL;
    int ok = o && cJSON_AddNumberToObject(o, "step", (double)step) &&
             cJSON_AddNumberToObject(o, "prompt_index", (double)pos) &&
             cJSON_AddNumberToObject(o, "problem", (double)problem) &&
             cJSON_AddNumberToObject(o, "sample", (double)(r % G)) &&
             cJSON_AddStringToObject(o, "prompt", prompt.data ? prompt.data : "") &&
             cJSON_AddStringToObject(o, "response", response.data ? response.data : "") &&
             cJSON_AddStringToObject(o, "gold", data->problems.records[problem].answer) &&
             cJSON_AddNumberToObject(o, "reward", b->reward[r]) &&
             cJSON_AddBoolToObject(o, "stopped", b->stopped[r]) &&
             cJSON_AddNumberToObject(o, "response_tokens", (double)rlen);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (text) {
        text_buf_append_str(lines, text);
        text_buf_append_char(lines, '\n');
    }
    if (status == KPO_OK && (!text || lines->failed))
        status = error_set(err, "run.dump_responses: out of memory");
    free(text);
    text_buf_free(&raw);
    text_buf_free(&prompt);
    text_buf_free(&response);
    return status;
}

int train_dump_step(train_data *data, const train_settings *s, int64_t step,
                    const rl_batch *batch, kpo_error *err)
{
    if (s->dump_responses <= 0 || batch->n <= 0)
        return KPO_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", s->out_dir, TRAIN_DUMP_FILE);
    int cut = 0;
    if (needs_truncate(path, step, &cut, err) != KPO_OK ||
        (cut && train_dump_truncate(path, step, err) != KPO_OK))
        return error_prefix(err, "run.dump_responses: ");
    const int64_t N = s->dump_responses < batch->n ? s->dump_responses : batch->n;
    text_buf lines;
    text_buf_init(&lines);
    int status = KPO_OK;
    for (int64_t i = 0; status == KPO_OK && i < N; i++)
        status = dump_line(data, s, step, batch, i * batch->n / N, &lines, err);
    /* One write of whole lines: a crash leaves at most a cut last line,
     * which the next run drops. */
    int fd = status == KPO_OK ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (status == KPO_OK && fd < 0)
        status = error_set(err, "run.dump_responses: cannot open %s: %s", path, strerror(errno));
    for (size_t at = 0; status == KPO_OK && at < lines.len;) {
        ssize_t w = write(fd, lines.data + at, lines.len - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            status = error_set(err, "run.dump_responses: writing %s: %s", path, strerror(errno));
        else
            at += (size_t)w;
    }
    if (fd >= 0 && close(fd) != 0 && status == KPO_OK)
        status = error_set(err, "run.dump_responses: closing %s: %s", path, strerror(errno));
    text_buf_free(&lines);
    return status;
}
