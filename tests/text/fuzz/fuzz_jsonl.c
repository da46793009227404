/* libFuzzer: each line of the input through the JSONL parser and the record
 * extractor, with default and nested field names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/jsonl_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const dataset_options options[] = {{NULL, NULL, false}, {"a.b", "c.d.e", false}};
    for (size_t start = 0; start <= size;) {
        const char *nl = memchr(text + start, '\n', size - start);
        size_t end = nl ? (size_t)(nl - text) : size;
        cJSON *obj;
        kpo_error err;
        if (jsonl_parse_object(text + start, end - start, &obj, &err) == KPO_OK) {
            for (int k = 0; k < 2; k++) {
                dataset_record rec;
                /* odd k: the line's text too, so number answers are quoted from it */
                int status = k ? dataset_record_from_line(obj, text + start, end - start,
                                                          &options[k], &rec, &err)
                               : dataset_record_from_json(obj, &options[k], &rec, &err);
                if (status == KPO_OK) {
                    if (!rec.problem[0] || !rec.answer[0])
                        abort();
                    dataset_record_free(&rec);
                }
            }
            cJSON_Delete(obj);
        }
        start = end + 1;
    }
    return 0;
}
