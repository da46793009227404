/* kpo info: the build's features (MPI, HDF5, CUDA, NCCL) and the GPUs this
 * process sees. */
#include <stdio.h>

#include "cli/commands.h"
#include "core/build_info.h"
#include "model/cuda/cuda_probe.h"

int cmd_info(int argc, char **argv)
{
    cli_command_spec spec = {"info", "", "Print what this build supports and which GPUs it sees.",
                             NULL, 0};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    char build[512], devices[1024];
    build_info_describe(build, sizeof build);
    cuda_probe_devices(devices, sizeof devices);
    printf("%s\ndevices: %s\n", build, devices);
    return 0;
}
