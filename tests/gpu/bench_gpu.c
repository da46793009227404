/* Benchmarks for tests/gpu/run.sh (not a test). Prints one line per
 * measurement, "ROW|<what>|<value>|<unit>|<note>", which run.sh gathers
 * into its table; everything else is log.
 *   bench_gpu filter    the filter kernel vs the CPU filter, tokens/s
 *   bench_gpu nccl      under mpirun: all-reduce and bf16 broadcast GB/s
 * Nothing is printed as a number that was not measured. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "core/rng.h"
#include "filter/filter.h"
#include "filter/filter_cuda.h"
#include "kpo_config.h"

#if KPO_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#if KPO_HAVE_MPI
#include <mpi.h>

#include "bench_shapes.h"
#include "comm/comm_nccl.h"
#endif

#if KPO_HAVE_CUDA
/* Best of `reps` wall times of one call; the GPU calls synchronise
 * themselves (statistics are read back). */
#define BEST_OF(reps, best, call)                                              \
    do {                                                                       \
        best = INFINITY;                                                       \
        for (int rep_ = 0; rep_ < (reps); rep_++) {                            \
            double t0_ = now_seconds();                                        \
            if ((call) != KPO_OK) {                                            \
                fprintf(stderr, "bench_gpu: %s\n", err.message);              \
                return 1;                                                      \
            }                                                                  \
            double t_ = now_seconds() - t0_;                                   \
            best = t_ < best ? t_ : best;                                      \
        }                                                                      \
    } while (0)

static int bench_filter_shape(int64_t n_responses, int mean_len, filter_mode mode)
{
    rng_stream rng;
    rng_stream_init(&rng, 5, 0);
    int64_t *offsets = malloc((size_t)(n_responses + 1) * sizeof *offsets);
    offsets[0] = 0;
    for (int64_t r = 0; r < n_responses; r++)
        offsets[r + 1] = offsets[r] + (int64_t)(2.0 * mean_len * rng_uniform(&rng));
    int64_t n = offsets[n_responses];
    double *values = malloc((size_t)n * sizeof *values), *rho = malloc((size_t)n * sizeof *rho);
    for (int64_t i = 0; i < n; i++)
        values[i] = 0.05 * rng_student_t(&rng, 3);
    filter_config cfg;
    filter_config_default(&cfg);
    cfg.mode = mode;
    cfg.q = 1e-3;
    filter_outputs out = {.rho = rho};
    innov_stats stats;
    innov_stats_init(&stats);
    kpo_error err;
    double cpu, gpu_host, gpu_dev;
    BEST_OF(3, cpu, filter_apply(&cfg, values, offsets, n_responses, &out, &stats, &err));
    BEST_OF(3, gpu_host, filter_cuda_apply(&cfg, values, offsets, n_responses, &out, &stats, &err));

    double *d_values, *d_rho, *d_gain;
    int64_t *d_offsets;
    if (cudaMalloc((void **)&d_values, (size_t)n * 8) || cudaMalloc((void **)&d_rho, (size_t)n * 8) ||
        cudaMalloc((void **)&d_gain, (size_t)n * 8) ||
        cudaMalloc((void **)&d_offsets, (size_t)(n_responses + 1) * 8)) {
        fprintf(stderr, "bench_gpu: cudaMalloc failed\n");
        return 1;
    }
    cudaMemcpy(d_values, values, (size_t)n * 8, cudaMemcpyHostToDevice);
    cudaMemcpy(d_offsets, offsets, (size_t)(n_responses + 1) * 8, cudaMemcpyHostToDevice);
    filter_outputs d_out = {.rho = d_rho, .gain = d_gain};
    BEST_OF(10, gpu_dev, filter_cuda_apply_device(&cfg, d_values, d_offsets, n_responses, n,
                                                  &d_out, &stats, NULL, &err));
    char what[128], note[128];
    snprintf(note, sizeof note, "%lld responses x ~%d tokens, mode %s", (long long)n_responses,
             mean_len, filter_mode_name(mode));
    snprintf(what, sizeof what, "filter CPU (1 core) [%lld resp]", (long long)n_responses);
    row(what, n / cpu, "tokens/s", note);
    snprintf(what, sizeof what, "filter GPU, device arrays [%lld resp]", (long long)n_responses);
    row(what, n / gpu_dev, "tokens/s", "check + kernel + stats readback");
    snprintf(what, sizeof what, "filter GPU, host arrays [%lld resp]", (long long)n_responses);
    row(what, n / gpu_host, "tokens/s", "incl. cudaMalloc and copies");
    snprintf(what, sizeof what, "filter GPU/CPU speed-up [%lld resp]", (long long)n_responses);
    row(what, cpu / gpu_dev, "x", "device arrays vs CPU");
    cudaFree(d_values);
    cudaFree(d_rho);
    cudaFree(d_gain);
    cudaFree(d_offsets);
    free(offsets);
    free(values);
    free(rho);
    return 0;
}

static int bench_filter(void)
{
    /* A paper-shaped mini-batch (512 responses of up to ~4k tokens) and a
     * many-short-responses one that fills the GPU with threads. */
    return bench_filter_shape(512, 2048, FILTER_MODE_SIGMA) ||
           bench_filter_shape(16384, 256, FILTER_MODE_SIGMA) ||
           bench_filter_shape(512, 2048, FILTER_MODE_ITERATED);
}
#endif

#if KPO_HAVE_MPI && KPO_HAVE_NCCL
/* The learner's weight sync as train does it: Qwen3-4B's bf16 weights
 * (8 GB) from rank 0 to every other rank in one in-place broadcast. */
static int bench_weight_broadcast(comm_nccl *c, int rank, const char *note)
{
    model_config config;
    bench_shape_config("4b", &config);
    const int64_t n = model_config_param_count(&config);
    kpo_error err;
    void *dev;
    if (cudaMalloc(&dev, (size_t)n * 2)) {
        fprintf(stderr, "bench_gpu: cudaMalloc of the 4B weights (%lld bf16) failed\n", (long long)n);
        return 1;
    }
    cudaMemset(dev, 0, (size_t)n * 2);
    double best = INFINITY;
    for (int rep = 0; rep < 3; rep++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now_seconds();
        if (comm_nccl_broadcast_bf16(c, dev, n, 0, &err)) {
            fprintf(stderr, "bench_gpu: %s\n", err.message);
            return 1;
        }
        double t = now_seconds() - t0;
        best = rep > 0 && t < best ? t : best;
    }
    if (rank == 0) {
        char what[96];
        snprintf(what, sizeof what, "weight broadcast 4B bf16 (%.2f GB)", 2e-9 * (double)n);
        row(what, 2.0 * (double)n / best / 1e9, "GB/s", note);
    }
    cudaFree(dev);
    return 0;
}

static int bench_nccl(void)
{
    int rank, size, device;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    kpo_error err;
    comm_nccl *c;
    if (comm_nccl_select_device(MPI_COMM_WORLD, &device, &err) ||
        comm_nccl_init(&c, MPI_COMM_WORLD, 120.0, &err)) {
        fprintf(stderr, "bench_gpu: rank %d: %s\n", rank, err.message);
        return 1;
    }
    const int64_t max_bytes = (int64_t)1 << 30;
    void *dev;
    if (cudaMalloc(&dev, (size_t)max_bytes)) {
        fprintf(stderr, "bench_gpu: cudaMalloc of 1 GiB failed\n");
        return 1;
    }
    cudaMemset(dev, 0, (size_t)max_bytes);
    char note[96];
    snprintf(note, sizeof note, "%d rank(s)%s", size,
             size == 1 ? ": a device-local copy, no link crossed" : "");
    const int64_t sizes[] = {(int64_t)1 << 20, (int64_t)16 << 20, (int64_t)256 << 20, max_bytes};
    for (int k = 0; k < 4; k++) {
        int64_t n = sizes[k] / 4;
        double best = INFINITY;
        for (int rep = 0; rep < 6; rep++) { /* the first includes connection setup */
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = now_seconds();
            if (comm_nccl_sum_floats(c, dev, n, &err)) {
                fprintf(stderr, "bench_gpu: %s\n", err.message);
                return 1;
            }
            double t = now_seconds() - t0;
            best = rep > 0 && t < best ? t : best;
        }
        double algbw = (double)sizes[k] / best / 1e9;
        char what[96];
        snprintf(what, sizeof what, "NCCL all-reduce fp32 %lld MiB", (long long)(sizes[k] >> 20));
        if (rank == 0)
            row(what, size > 1 ? algbw * 2.0 * (size - 1) / size : algbw, "GB/s",
                size > 1 ? "bus bandwidth" : note);
    }
    double best = INFINITY;
    for (int rep = 0; rep < 4; rep++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now_seconds();
        if (comm_nccl_broadcast_bf16(c, dev, max_bytes / 2, 0, &err)) {
            fprintf(stderr, "bench_gpu: %s\n", err.message);
            return 1;
        }
        double t = now_seconds() - t0;
        best = rep > 0 && t < best ? t : best;
    }
    if (rank == 0)
        row("NCCL broadcast bf16 1 GiB", (double)max_bytes / best / 1e9, "GB/s", note);
    cudaFree(dev);
    if (bench_weight_broadcast(c, rank, note))
        return 1;
    comm_nccl_free(c);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "filter") == 0) {
#if KPO_HAVE_CUDA
        return bench_filter();
#else
        fprintf(stderr, "bench_gpu: built without CUDA\n");
        return 1;
#endif
    }
    if (strcmp(what, "nccl") == 0) {
#if KPO_HAVE_MPI && KPO_HAVE_NCCL
        MPI_Init(&argc, &argv);
        int status = bench_nccl();
        MPI_Finalize();
        return status;
#else
        fprintf(stderr, "bench_gpu: built without MPI or NCCL\n");
        return 1;
#endif
    }
    fprintf(stderr, "usage: bench_gpu filter | nccl (under mpirun)\n");
    return 2;
}
