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
  # --disable-new-dtags: DT_RPATH rather than DT_RUNPATH, because only the
  # former also serves the libraries Open MPI dlopens later (its MCA
  # components need libpmix.so.2 and friends): without it a singleton rank
  # would take them from the image's own Open MPI/PMIx, if it has one.
  export LDFLAGS="-Wl,--disable-new-dtags -Wl,-rpath,${libs//:/,-rpath,} ${LDFLAGS:-}"
  export CPATH=$sysroot/usr/include:$sysroot/usr/include/x86_64-linux-gnu:$sysroot/usr/include/hdf5/serial${CPATH:+:$CPATH}
  # A relocated Open MPI finds its components and help files from here, and
  # the carried PMIx its own (else it dlopens whatever sits at its compiled-in
  # path, the image's PMIx components if it has one: a warning per component
  # and launch). Not PMIX_INSTALL_PREFIX or other PMIX_*DIR variables: Open
  # MPI refuses to start when they disagree with OPAL_PREFIX (it sets the
  # former itself). Load errors that remain (optional transports whose
  # libraries are absent) are not shown.
  export OPAL_PREFIX=$sysroot/usr
  export PMIX_MCA_mca_base_component_path=$multi/pmix2/lib/pmix
  export OMPI_MCA_mca_base_component_show_load_errors=0
  export PMIX_MCA_mca_base_component_show_load_errors=0
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

# NCCL and cuDNN where the image has them. meson.build looks NCCL up with
# find_library('nccl') (the unversioned libnccl.so, in /usr/local/cuda/lib64
# or the compiler's search path) and nccl.h; the image has only
# /usr/lib/x86_64-linux-gnu/libnccl.so.2, and cuDNN only inside the Python
# package nvidia-cudnn-cu13. So: a private folder of links (libnccl.so ->
# the real libnccl.so.2, libcudnn*.so -> libcudnn*.so.9) goes first on
# LIBRARY_PATH, a header folder that is not searched anyway onto CPATH, and
# a library folder outside the system's onto the rpath. Exports
# KPO_NCCL_LIB, KPO_NCCL_INCLUDE, KPO_CUDNN_ROOT (the folder with include/
# and lib/), KPO_CUDNN_LIB, KPO_CUDNN_INCLUDE, and GPU_NCCL_DESC and
# GPU_CUDNN_DESC, one line each for the run's table.
#   gpu_find_nccl_cudnn LINK_DIR [PYTHON]
gpu_find_nccl_cudnn() {
  local links=$1 python=${2:-python3} d f inc v site=""
  mkdir -p "$links"
  # Python site folders: the chosen interpreter's, then the image's venv.
  site=$("$python" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)
  for s in /opt/torch/.venv/lib/python3*/site-packages; do site="$site $s"; done
  local pkg_dirs=() s
  for s in $site; do
    [ -d "$s/nvidia" ] && pkg_dirs+=("$s/nvidia")
  done
  # find DIRS... -- NAME: the first file NAME in the package folders, 3 deep.
  _gpu_find_in_pkgs() {
    local name=$1
    [ ${#pkg_dirs[@]} -gt 0 ] || return 0
    find "${pkg_dirs[@]}" -maxdepth 3 -name "$name" 2>/dev/null | sort | head -1
  }
  _gpu_add_rpath() {  # a library folder the loader does not search by itself
    case $1 in /usr/lib/x86_64-linux-gnu|/usr/lib64|/usr/lib|/lib/x86_64-linux-gnu|/usr/local/cuda/lib64) ;;
      *) export LDFLAGS="-Wl,-rpath,$1 ${LDFLAGS:-}" ;;
    esac
  }
  _gpu_add_cpath() {
    case $1 in /usr/include|/usr/local/cuda/include) ;;
      *) export CPATH=$1${CPATH:+:$CPATH} ;;
    esac
  }

  KPO_NCCL_LIB=""; KPO_NCCL_INCLUDE=""
  for d in /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64; do
    for f in "$d/libnccl.so" "$d/libnccl.so.2"; do
      [ -e "$f" ] && { KPO_NCCL_LIB=$d/$(basename "$(readlink -f "$f")"); break 2; }
    done
  done
  [ -n "$KPO_NCCL_LIB" ] || KPO_NCCL_LIB=$(_gpu_find_in_pkgs libnccl.so.2)
  if [ -n "$KPO_NCCL_LIB" ]; then
    d=$(dirname "$KPO_NCCL_LIB")
    ln -sf "$KPO_NCCL_LIB" "$links/libnccl.so"
    _gpu_add_rpath "$d"
    for inc in /usr/local/cuda/include /usr/include "$d/../include"; do
      [ -e "$inc/nccl.h" ] && { KPO_NCCL_INCLUDE=$(cd "$inc" && pwd); break; }
    done
    v=""
    if [ -n "$KPO_NCCL_INCLUDE" ]; then
      _gpu_add_cpath "$KPO_NCCL_INCLUDE"
      v=$(awk '/^#define NCCL_(MAJOR|MINOR|PATCH) /{printf "%s%s", sep, $3; sep="."}' "$KPO_NCCL_INCLUDE/nccl.h")
    fi
    GPU_NCCL_DESC="NCCL ${v:-?}: $KPO_NCCL_LIB (linked as $links/libnccl.so), header ${KPO_NCCL_INCLUDE:-NOT FOUND}"
  else
    GPU_NCCL_DESC="NCCL: not found (no libnccl.so[.2] in /usr/local/cuda/lib64, /usr/lib/x86_64-linux-gnu or the Python packages)"
  fi

  KPO_CUDNN_ROOT=""; KPO_CUDNN_LIB=""; KPO_CUDNN_INCLUDE=""
  f=$(_gpu_find_in_pkgs libcudnn.so.9)
  if [ -z "$f" ]; then
    for d in /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
      [ -e "$d/libcudnn.so.9" ] && { f=$d/libcudnn.so.9; break; }
    done
  fi
  if [ -n "$f" ]; then
    KPO_CUDNN_LIB=$(cd "$(dirname "$f")" && pwd)
    KPO_CUDNN_ROOT=$(cd "$KPO_CUDNN_LIB/.." && pwd)
    for inc in "$KPO_CUDNN_ROOT/include" /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu; do
      [ -e "$inc/cudnn.h" ] && { KPO_CUDNN_INCLUDE=$inc; break; }
    done
    for f in "$KPO_CUDNN_LIB"/libcudnn*.so.9; do
      [ -e "$f" ] && ln -sf "$f" "$links/$(basename "$f" .9)"
    done
    _gpu_add_rpath "$KPO_CUDNN_LIB"
    v=""
    if [ -n "$KPO_CUDNN_INCLUDE" ]; then
      _gpu_add_cpath "$KPO_CUDNN_INCLUDE"
      f=$KPO_CUDNN_INCLUDE/cudnn_version.h
      [ -e "$f" ] && v=$(awk '/^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", sep, $3; sep="."}' "$f")
    fi
    GPU_CUDNN_DESC="cuDNN ${v:-?}: $KPO_CUDNN_LIB/libcudnn.so.9, headers ${KPO_CUDNN_INCLUDE:-NOT FOUND} (KPO_CUDNN_ROOT=$KPO_CUDNN_ROOT)"
  else
    GPU_CUDNN_DESC="cuDNN: not found (no libcudnn.so.9 in nvidia/ of the Python packages, /usr/local/cuda/lib64 or /usr/lib/x86_64-linux-gnu)"
  fi
  export LIBRARY_PATH=$links${LIBRARY_PATH:+:$LIBRARY_PATH}
  export KPO_NCCL_LIB KPO_NCCL_INCLUDE KPO_CUDNN_ROOT KPO_CUDNN_LIB KPO_CUDNN_INCLUDE
  export GPU_NCCL_DESC GPU_CUDNN_DESC
  unset -f _gpu_find_in_pkgs _gpu_add_rpath _gpu_add_cpath
}
