/* kpo train's prompts (train_data.h): the dataset rendered and tokenized
 * once, each step's selection by seed and epoch, the tokenizer resolved. */
#include "train/train_data.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "data/arith_task.h"
#include "data/prompt_encode.h"

int train_tokenizer_resolve(const char *setting, const char *model_dir, char *out, size_t size,
                            kpo_error *err)
{
    if (setting && setting[0]) {
        snprintf(out, size, "%s", setting);
        return KPO_OK;
    }
    char meta_path[4200];
    snprintf(meta_path, sizeof meta_path, "%s/kpo_model.json", model_dir);
    snprintf(out, size, "%s", model_dir);
    if (!file_exists(meta_path))
        return KPO_OK;
    char *text = NULL;
    if (file_read_all(meta_path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *json = cJSON_Parse(text);
    free(text);
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(json, "tokenizer");
    int status = KPO_OK;
    if (!json)
        status = error_set(err, "%s: not valid JSON", meta_path);
    else if (cJSON_IsString(tok) && tok->valuestring[0])
        snprintf(out, size, "%s", tok->valuestring);
    cJSON_Delete(json);
    return status;
}

static int load_problems(const train_settings *s, dataset *ds, kpo_error *err)
{
    if (strcmp(s->train_data, "arith") == 0)
        return arith_task_dataset(ds, s->seed, ARITH_TRAIN, (size_t)s->arith_problems,
                                  s->arith_difficulty, err);
    dataset_options opt = {.problem_field = s->problem_field[0] ? s->problem_field : NULL,
                           .answer_field = s->answer_field[0] ? s->answer_field : NULL,
                           .skip_bad = false};
    return dataset_load(ds, s->train_data, &opt, err);
}

/* Tokenizes every problem's prompt, keeping those that fit (and a copy of
 * their records, in the same order). */
static int encode_prompts(const train_settings *s, train_data *d, const dataset *all,
                          kpo_error *err)
{
    prompt_set set;
    if (prompt_encode_dataset(all, s->prompt_template, s->chat_template, d->tok,
                              s->max_prompt_tokens, &set, err) != KPO_OK)
        return KPO_ERR;
    d->prompt_tokens = set.tokens;
    d->prompt_offsets = set.offsets;
    d->skipped_long = set.skipped_long;
    set.tokens = NULL;
    set.offsets = NULL;
    int status = KPO_OK;
    for (int64_t i = 0; i < set.n && status == KPO_OK; i++) {
        const dataset_record *rec = &all->records[set.source[i]];
        dataset_record copy = {strdup(rec->problem), strdup(rec->answer), rec->line};
        status = dataset_append(&d->problems, &copy, err);
        d->n++;
    }
    prompt_set_free(&set);
    return status;
}

int train_data_open(const train_settings *s, train_data *d, kpo_error *err)
{
    memset(d, 0, sizeof *d);
    d->order_epoch = -1;
    dataset_init(&d->problems);
    char tokenizer_name[4096];
    dataset all;
    dataset_init(&all);
    int status = train_tokenizer_resolve(s->tokenizer, s->model_path, tokenizer_name,
                                         sizeof tokenizer_name, err);
    if (status == KPO_OK)
        status = tokenizer_load(&d->tok, tokenizer_name, err);
    if (status == KPO_OK)
        status = load_problems(s, &all, err);
    if (status == KPO_OK)
        status = encode_prompts(s, d, &all, err);
    dataset_free(&all);
    if (status == KPO_OK && d->n < s->prompts_per_step)
        status = error_set(err, "data.train = '%s': %lld usable problems, fewer than "
                                "rollout.prompts_per_step = %lld",
                           s->train_data, (long long)d->n, (long long)s->prompts_per_step);
    if (status == KPO_OK)
        status = stop_tokens_resolve(s->stop, "rollout.stop", s->model_path, d->tok, &d->stop,
                                     err);
    if (status == KPO_OK) {
        d->order = malloc((size_t)d->n * sizeof *d->order);
        if (!d->order)
            status = error_set(err, "data: out of memory");
    }
    if (status != KPO_OK)
        train_data_close(d);
    return status;
}

void train_data_close(train_data *d)
{
    dataset_free(&d->problems);
    if (d->tok)
        tokenizer_free(d->tok);
    free(d->prompt_tokens);
    free(d->prompt_offsets);
    free(d->order);
    memset(d, 0, sizeof *d);
}

int64_t train_data_pick(train_data *d, uint64_t seed, int64_t step, int64_t per_step, int64_t i)
{
    int64_t position = (step - 1) * per_step + i;
    int64_t epoch = position / d->n;
    if (epoch != d->order_epoch) {
        dataset_shuffle(d->order, (size_t)d->n, seed, (uint64_t)epoch);
        d->order_epoch = epoch;
    }
    return (int64_t)d->order[position % d->n];
}
