/* Opening the model backend of `kpo eval` (and the GPU check `kpo sft`
 * shares) on the device --device names. */
#include "eval/eval_device.h"

#include <string.h>

#include "comm/comm_world.h"
#include "model/cuda/cuda_probe.h"

int eval_device_require_gpu(kpo_error *err)
{
    char why[512];
    if (cuda_probe_devices(why, sizeof why) > 0)
        return KPO_OK;
    /* The probe says "no usable GPU (why)", "0 GPU(s):" or, in a build
     * without CUDA, the reason alone. */
    const char *wrapped = "no usable GPU (";
    const size_t n = strlen(why), w = strlen(wrapped);
    if (n > w && strncmp(why, wrapped, w) == 0 && why[n - 1] == ')')
        return error_set(err, "no usable GPU: %.*s", (int)(n - w - 1), why + w);
    if (strncmp(why, "0 GPU", 5) == 0)
        return error_set(err, "no usable GPU: the driver reports no devices");
    return error_set(err, "no usable GPU: %s", why);
}

const char *eval_device_dtype(model_device device)
{
    return device == MODEL_DEVICE_CUDA ? "bf16" : "fp32";
}

int eval_device_open(model_backend *be, model_device device, const gpu_model_options *paths,
                     model *m, kpo_error *err)
{
    memset(be, 0, sizeof *be);
    if (device == MODEL_DEVICE_CPU) {
        *be = model_backend_cpu_eval(m);
        return -1;
    }
    int gpu = -1;
    kpo_error probe;
    const int usable = eval_device_require_gpu(&probe) == KPO_OK;
    /* Selected whatever the probe said: finding the local rank is
     * collective. The probe's reason is the better one where both fail (it
     * knows a build without CUDA from one without NCCL). */
    int status = comm_world_select_gpu(&gpu, err);
    if (!usable) {
        *err = probe;
        status = KPO_ERR;
    }
    int first = comm_world_first_failure(status != KPO_OK);
    if (first < 0) {
        /* Decoding sizes its KV cache and prefill activations from the
         * memory free when it begins; there is no training batch to plan.
         * From paths only the decode paths. */
        gpu_model_options o;
        memset(&o, 0, sizeof o);
        if (paths) {
            o.decode_attention = paths->decode_attention;
            o.prefill_attention = paths->prefill_attention;
            o.decode_graphs = paths->decode_graphs;
        }
        status = model_backend_cuda_create(be, m, NULL, &o, err);
        first = comm_world_first_failure(status != KPO_OK);
    }
    if (status != KPO_OK)
        error_prefix(err, "--device cuda: ");
    return first;
}
