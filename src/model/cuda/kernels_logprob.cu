/* Placeholder: being written (issue 7). */
#include "kernels_common.cuh"
