/* kpo tokenize: text on stdin to ids on stdout (one line per line), or the
 * reverse with --decode; for checking the tokenizer against HF's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/parse.h"
#include "tokenizer/tokenizer.h"

/* delimiter '\0' keeps newlines inside a record (multi-line problems). */
static int encode_lines(const tokenizer *tok, int flags, int delimiter, kpo_error *err)
{
    char *line = NULL;
    size_t capacity = 0;
    ssize_t n;
    long line_no = 0;
    int status = KPO_OK;
    id_list ids;
    id_list_init(&ids);
    while (status == KPO_OK && (n = getdelim(&line, &capacity, delimiter, stdin)) >= 0) {
        line_no++;
        if (n > 0 && line[n - 1] == delimiter)
            n--;
        ids.count = 0;
        if (tokenizer_encode(tok, line, (size_t)n, flags, &ids, err) != KPO_OK) {
            status = error_prefix(err, "stdin:%ld: ", line_no);
            break;
        }
        for (size_t k = 0; k < ids.count; k++)
            printf(k ? " %ld" : "%ld", (long)ids.ids[k]);
        putchar('\n');
    }
    id_list_free(&ids);
    free(line);
    return status;
}

static int decode_lines(const tokenizer *tok, kpo_error *err)
{
    char *line = NULL;
    size_t capacity = 0;
    long line_no = 0;
    int status = KPO_OK;
    id_list ids;
    id_list_init(&ids);
    text_buf text;
    text_buf_init(&text);
    while (status == KPO_OK && getline(&line, &capacity, stdin) >= 0) {
        line_no++;
        ids.count = 0;
        text_buf_clear(&text);
        char label[64];
        snprintf(label, sizeof label, "stdin:%ld: token id", line_no);
        for (char *field = strtok(line, " \t\r\n"); field && status == KPO_OK;
             field = strtok(NULL, " \t\r\n")) {
            int64_t id;
            status = parse_int64(field, label, &id, err);
            if (status == KPO_OK && (id < 0 || id > INT32_MAX))
                status = error_set(err, "%s %s is out of range", label, field);
            id_list_push(&ids, (int32_t)id);
        }
        if (status == KPO_OK && tokenizer_decode(tok, ids.ids, ids.count, &text, err) != KPO_OK)
            status = error_prefix(err, "stdin:%ld: ", line_no);
        if (status == KPO_OK) {
            fwrite(text.data ? text.data : "", 1, text.len, stdout);
            putchar('\n');
        }
    }
    text_buf_free(&text);
    id_list_free(&ids);
    free(line);
    return status;
}

int cmd_tokenize(int argc, char **argv)
{
    cli_option options[] = {
        {"tokenizer", "DIR", "model directory (vocab.json + merges.txt, or tokenizer.json), "
                             "or 'byte' for the byte tokenizer (required)", NULL},
        {"decode", NULL, "read lines of ids and print the text", NULL},
        {"no-special", NULL, "treat <|im_start|> and other added tokens as plain text", NULL},
        {"nul", NULL, "input records end with a NUL byte instead of a newline", NULL},
    };
    cli_command_spec spec = {"tokenize", "--tokenizer DIR [--decode] [--no-special] [--nul] < INPUT",
                             "Encode each line of stdin to space-separated token ids (or decode "
                             "ids back to text).",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    const char *dir = cli_get(&spec, "tokenizer");
    if (!dir)
        return command_fail("kpo tokenize: --tokenizer is required");
    kpo_error err;
    tokenizer *tok;
    if (tokenizer_load(&tok, dir, &err) != KPO_OK)
        return command_fail(err.message);
    int flags = cli_get(&spec, "no-special") ? 0 : TOKENIZER_MATCH_SPECIAL;
    int delimiter = cli_get(&spec, "nul") ? '\0' : '\n';
    status = cli_get(&spec, "decode") ? decode_lines(tok, &err)
                                      : encode_lines(tok, flags, delimiter, &err);
    tokenizer_free(tok);
    if (fflush(stdout) != 0 && status == KPO_OK)
        status = error_set(&err, "writing stdout failed");
    return status == KPO_OK ? 0 : command_fail(err.message);
}
