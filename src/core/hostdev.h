/* Marks small inline functions that both the C library and CUDA kernels
 * compile, so the CPU and GPU paths share one definition and cannot drift.
 * Under nvcc they become __host__ __device__; under a C compiler, nothing. */
#ifndef KPO_CORE_HOSTDEV_H
#define KPO_CORE_HOSTDEV_H

#ifdef __CUDACC__
#define KPO_HOSTDEV __host__ __device__
#else
#define KPO_HOSTDEV
#endif

#endif
