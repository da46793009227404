/* The device `kpo eval` and `kpo sft` compute on: --device cpu|cuda, the
 * meaning of kpo train's run.device. cpu is the fp32 CPU model; cuda the
 * bf16 GPU model (src/model/model_cuda.h), one GPU per rank chosen by local
 * rank as kpo train chooses it. */
#ifndef KPO_EVAL_EVAL_DEVICE_H
#define KPO_EVAL_EVAL_DEVICE_H

#include "core/error.h"
#include "model/model.h"
#include "model/model_backend.h"

/* KPO_OK when this process sees at least one GPU; otherwise
 * "no usable GPU: <why>" (the words the gpu tests look for to skip). */
int eval_device_require_gpu(kpo_error *err);

/* What the weights are computed in: "fp32" on the CPU, "bf16" on CUDA. */
const char *eval_device_dtype(model_device device);

/* kpo eval's backend over the host model m: the CPU model itself, or on
 * cuda an inference GPU model (bf16 weights alone) on this rank's GPU.
 * Collective over the ranks, every stage ending with them agreeing, so a
 * rank without a GPU never leaves the others waiting. Returns the lowest
 * rank that failed, or -1 when all are ready; err, on the ranks that
 * failed, says why ("--device cuda: no usable GPU: ..."). be is always
 * safe to model_backend_free afterwards. paths (may be NULL: the
 * defaults): on cuda, the decode paths to take (decode_attention,
 * prefill_attention, decode_graphs; its other fields are not read). */
int eval_device_open(model_backend *be, model_device device, const gpu_model_options *paths,
                     model *m, kpo_error *err);

#endif
