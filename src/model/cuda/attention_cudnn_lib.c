/* Loading cuDNN for the fused attention (attention_cudnn.h): libcudnn.so.9
 * is dlopen()ed on first use and never dlclose()d (cuDNN keeps
 * process-wide state), its backend entry points looked up, its version
 * checked; plus the handle's create/destroy and the wording of cuDNN's
 * errors every other attention_cudnn file uses. */
#include "model/cuda/attention_cudnn_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

/* ---- Loading ---- */

static bool load_symbol(void *lib, const char *name, void *fn, size_t fn_size)
{
    void *sym = dlsym(lib, name);
    if (!sym)
        return false;
    memcpy(fn, &sym, fn_size); /* POSIX: object pointer to function pointer */
    return true;
}

#define LOAD(a, field, name)                                                   \
    load_symbol((a)->lib, name, &(a)->api.field, sizeof (a)->api.field)

static int load_api(attention_cudnn *a, kpo_error *err)
{
    const bool ok = LOAD(a, GetVersion, "cudnnGetVersion") &&
                    LOAD(a, GetErrorString, "cudnnGetErrorString") &&
                    LOAD(a, Create, "cudnnCreate") && LOAD(a, Destroy, "cudnnDestroy") &&
                    LOAD(a, SetStream, "cudnnSetStream") &&
                    LOAD(a, BackendCreateDescriptor, "cudnnBackendCreateDescriptor") &&
                    LOAD(a, BackendDestroyDescriptor, "cudnnBackendDestroyDescriptor") &&
                    LOAD(a, BackendFinalize, "cudnnBackendFinalize") &&
                    LOAD(a, BackendSetAttribute, "cudnnBackendSetAttribute") &&
                    LOAD(a, BackendGetAttribute, "cudnnBackendGetAttribute") &&
                    LOAD(a, BackendExecute, "cudnnBackendExecute");
    if (!ok)
        return error_set(err, "cuDNN: the loaded library lacks a cuDNN 9 backend entry point: %s",
                         dlerror());
    /* Optional: only the message gets poorer without it. */
    if (!LOAD(a, GetLastErrorString, "cudnnGetLastErrorString"))
        a->api.GetLastErrorString = NULL;
    return KPO_OK;
}

/* cuDNN compiles its fused attention kernels at run time with NVRTC, which
 * its runtime-compiled engine library dlopen()s by name; that library's
 * own RUNPATH ($ORIGIN: the cuDNN folder) and the loader's defaults need
 * not reach the toolkit's lib64, where the CUDA image keeps libnvrtc.
 * Loading it first, globally, makes that later lookup by soname succeed.
 * Best effort: without it cuDNN refuses the plan and says why. */
static void preload_nvrtc(void)
{
    char pip[1024] = "";
    const char *env = getenv("KPO_CUDNN_LIB"); /* .../nvidia/cudnn/lib */
    if (env && *env)
        snprintf(pip, sizeof pip, "%s/../../cuda_nvrtc/lib/libnvrtc.so.13", env);
    const char *const names[] = {"libnvrtc.so.13", "/usr/local/cuda/lib64/libnvrtc.so.13", pip};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i][0] && dlopen(names[i], RTLD_NOW | RTLD_GLOBAL))
            return;
    (void)dlerror(); /* not this call's error to report */
}

/* libcudnn.so.9 from KPO_CUDNN_LIB (what tests/gpu/sysroot.sh exports), the
 * folder it was found in at build time, then wherever the loader looks
 * (rpath, LD_LIBRARY_PATH, the system). */
static int open_library(attention_cudnn *a, kpo_error *err)
{
    char paths[3][1024] = {"", "", ""};
    const char *env = getenv("KPO_CUDNN_LIB");
    if (env && *env)
        snprintf(paths[0], sizeof paths[0], "%s/libcudnn.so.9", env);
#ifdef KPO_CUDNN_LIBDIR
    snprintf(paths[1], sizeof paths[1], "%s/libcudnn.so.9", KPO_CUDNN_LIBDIR);
#endif
    snprintf(paths[2], sizeof paths[2], "libcudnn.so.9");
    const char *why = "not found";
    preload_nvrtc();
    for (int i = 0; i < 3 && !a->lib; i++) {
        if (!paths[i][0])
            continue;
        a->lib = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        if (!a->lib)
            why = dlerror();
    }
    if (!a->lib)
        return error_set(err, "cuDNN: cannot load libcudnn.so.9 (set KPO_CUDNN_LIB to its "
                              "folder): %s",
                         why ? why : "unknown error");
    return load_api(a, err);
}

/* Refuses versions the graph is not built for. */
static int check_version(attention_cudnn *a, kpo_error *err)
{
    const size_t v = a->version;
    snprintf(a->version_str, sizeof a->version_str, "%zu.%zu.%zu", v / 10000, v / 100 % 100,
             v % 100);
    if (v / 10000 != 9)
        return error_set(err, "cuDNN %s: kpo builds its attention graph for cuDNN 9 only",
                         a->version_str);
    if (v < ATTENTION_CUDNN_MIN_VERSION)
        return error_set(err, "cuDNN %s is older than 9.6.0, the first with grouped-query "
                              "attention on packed (ragged) sequences",
                         a->version_str);
    if (v == 91000 || v == 91001)
        return error_set(err, "cuDNN %s has known wrong bf16 attention backward results "
                              "(NVIDIA's frontend refuses it too): use 9.10.2 or newer",
                         a->version_str);
    return KPO_OK;
}

/* A failed cuDNN call, named, with cuDNN's own explanation when it has one. */
int cudnn_error(const attention_cudnn *a, cudnnStatus_t st, const char *call, const char *what,
                kpo_error *err)
{
    char last[512] = "";
    if (a->api.GetLastErrorString)
        a->api.GetLastErrorString(last, sizeof last);
    return error_set(err, "cuDNN %s: %s (%s): %s%s%s", a->version_str, call, what,
                     a->api.GetErrorString(st), last[0] ? ": " : "", last);
}

int attention_cudnn_create(attention_cudnn **out, kpo_error *err)
{
    *out = NULL;
    attention_cudnn *a = calloc(1, sizeof *a);
    if (!a)
        return error_set(err, "cuDNN attention: out of host memory");
    snprintf(a->version_str, sizeof a->version_str, "(version unknown)");
    int rc = open_library(a, err);
    if (rc == KPO_OK) {
        a->version = a->api.GetVersion();
        rc = check_version(a, err);
    }
    if (rc == KPO_OK) {
        const cudnnStatus_t st = a->api.Create(&a->handle);
        if (st != CUDNN_STATUS_SUCCESS)
            rc = cudnn_error(a, st, "cudnnCreate", "a handle on the current GPU", err);
    }
    if (rc != KPO_OK) {
        attention_cudnn_destroy(a);
        return KPO_ERR;
    }
    const char *exact = getenv("KPO_CUDNN_EXACT_SHAPES");
    a->exact = exact && strcmp(exact, "1") == 0;
    *out = a;
    return KPO_OK;
}

size_t attention_cudnn_version(const attention_cudnn *a) { return a ? a->version : 0; }

void attention_cudnn_destroy(attention_cudnn *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n_plans; i++)
        plan_entry_free(a, &a->plans[i]);
    if (a->handle)
        a->api.Destroy(a->handle);
    if (a->batch_dev)
        cudaFree(a->batch_dev);
    free(a);
}
