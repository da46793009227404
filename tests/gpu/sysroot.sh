# Sourced by run.sh on the GPU machine: unpacks the Debian packages carried
# in .gpu-debs/ (fetch-debs.sh) into a private sysroot and points the build
# at it. Nothing is written outside the sysroot, and nothing is put on
# LD_LIBRARY_PATH: kpo's binaries find the carried libraries through an
# rpath, so the image's own Python, PyTorch and driver stacks never load
# them. Only the carried mpirun runs through a wrapper that sets its path.
#   gpu_sysroot_setup DEBS_DIR SYSROOT
gpu_sysroot_setup() {
  local debs=$1 sysroot=$2 deb
  mkdir -p "$sysroot/bin"
  for deb in "$debs"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$sysroot"
    else  # no dpkg: a .deb is an ar archive holding data.tar.xz
      ar p "$deb" data.tar.xz | tar -xJf - -C "$sysroot"
    fi
  done
  local multi=$sysroot/usr/lib/x86_64-linux-gnu
  # The .pc files say prefix=/usr (or name /usr paths): make them name the sysroot.
  find "$sysroot" -name '*.pc' -exec sed -i -e "s|=/usr|=$sysroot/usr|" \
    -e "s| -I/usr/| -I$sysroot/usr/|g; s| -L/usr/| -L$sysroot/usr/|g" {} +
  # Links Debian's alternatives system would make; dpkg -x does not run it.
  ln -sf libopenblas.so.0 "$multi/openblas-openmp/libopenblas.so"
  mkdir -p "$multi/pkgconfig"
  ln -sf ../openblas-openmp/pkgconfig/openblas.pc "$multi/pkgconfig/openblas.pc"
  ln -sf ../openmpi/lib/pkgconfig/ompi-c.pc "$multi/pkgconfig/mpi.pc"
  local libs=$multi:$multi/openblas-openmp:$multi/openmpi/lib:$multi/hdf5/serial
  export PKG_CONFIG_PATH=$multi/pkgconfig:$multi/openmpi/lib/pkgconfig:$multi/hdf5/serial/pkgconfig:$sysroot/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export LIBRARY_PATH=$libs${LIBRARY_PATH:+:$LIBRARY_PATH}
  export LDFLAGS="-Wl,-rpath,${libs//:/,-rpath,} ${LDFLAGS:-}"
  export CPATH=$sysroot/usr/include:$sysroot/usr/include/x86_64-linux-gnu:$sysroot/usr/include/hdf5/serial${CPATH:+:$CPATH}
  # A relocated Open MPI finds its components and help files from here.
  export OPAL_PREFIX=$sysroot/usr
  local tool
  for tool in mpirun mpiexec orterun; do
    [ -e "$sysroot/usr/bin/$tool.openmpi" ] || [ -e "$sysroot/usr/bin/$tool" ] || continue
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
      "$libs" "$(ls "$sysroot/usr/bin/$tool.openmpi" "$sysroot/usr/bin/$tool" 2>/dev/null | head -1)" \
      >"$sysroot/bin/$tool"
    chmod +x "$sysroot/bin/$tool"
  done
  ln -sf ../usr/bin/pkgconf "$sysroot/bin/pkg-config"
  export PATH=$sysroot/bin:$PATH
}
