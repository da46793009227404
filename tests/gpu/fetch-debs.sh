#!/usr/bin/env bash
# Run HERE (a Debian 12 machine with apt), before a GPU session: downloads
# the Debian packages the GPU image lacks (its image has CUDA, meson, ninja
# and PyTorch, but none of the project's C libraries, and no network) into
# .gpu-debs/ at the repo root, which git ignores. The device call then
# carries it (carry: [".gpu-debs", ".gpu-data"], about 25 MB + 4.5 MB; the
# data comes from tests/gpu/prepare-data.sh) and tests/gpu/run.sh unpacks
# it into a private sysroot (tests/gpu/sysroot.sh), never into /.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=$root/.gpu-debs
mkdir -p "$dest"
cd "$dest"
# Build-time: pkg-config and the libraries meson looks up; run-time: what
# they link against beyond glibc, libstdc++ and zlib. Open MPI and HDF5 are
# optional features: run.sh falls back to a build without them.
packages=(
  pkgconf pkgconf-bin libpkgconf3
  libcmocka0 libcmocka-dev libinih1 libinih-dev libcjson1 libcjson-dev
  libpcre2-8-0 libpcre2-dev
  libopenblas0-openmp libopenblas-openmp-dev libgfortran5
  libopenmpi3 libopenmpi-dev openmpi-bin openmpi-common libpmix2 libhwloc15
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1
  libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 libnuma1 libmunge2 libltdl7
  libpciaccess0 libxnvctrl0 ocl-icd-libopencl1
  libhdf5-103-1 libhdf5-dev libhdf5-hl-100 libaec0 libsz2
)
apt-get download "${packages[@]}" 2>&1 | grep -v '^Get:\|unsandboxed' || true
echo "fetch-debs: $(ls "$dest"/*.deb | wc -l) packages, $(du -sh "$dest" | cut -f1) in $dest"
