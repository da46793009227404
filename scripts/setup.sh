#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (as root, or with sudo):
#   scripts/setup.sh demo   install dependencies, build, run the embedded default
#   scripts/setup.sh test   install dependencies, build, run the whole test suite
#   scripts/setup.sh deps | build   just those stages
# Every stage is idempotent: packages already present are not reinstalled and
# an existing build directory is reconfigured, not recreated.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${KPO_BUILD_DIR:-build}

PACKAGES=(
  build-essential meson ninja-build pkg-config
  libcmocka-dev libhdf5-dev hdf5-tools openmpi-bin libopenmpi-dev
  libcjson-dev libpcre2-dev libinih-dev libopenblas-dev libopenblas-openmp-dev
  clang libfuzzer-14-dev
  slurm-wlm munge iproute2
  python3 python3-h5py python3-numpy python3-torch python3-regex python3-pytest python3-pandas python3-matplotlib
)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

build() {
  local options=()
  # CI treats warnings as errors; a user's newer compiler should not block a build.
  if [ "${CI:-}" = "true" ]; then options+=(-Dwerror=true); fi
  if [ -d "$BUILD_DIR/meson-private" ]; then
    meson setup --reconfigure "$BUILD_DIR" "${options[@]}" >/dev/null
  else
    meson setup "$BUILD_DIR" "${options[@]}"
  fi
  ninja -C "$BUILD_DIR"
}

run_tests() {
  local status=0
  meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@" || status=$?
  /usr/bin/python3 tests/summarize_results.py "$BUILD_DIR/meson-logs/testlog.json" || status=1
  return $status
}

case "${1:-}" in
  deps) install_deps ;;
  build) install_deps; build ;;
  demo) install_deps; build; KPO_BIN="$BUILD_DIR/kpo" bash scripts/demo.sh ;;
  test) shift; install_deps; build; run_tests "$@" ;;
  *) echo "usage: scripts/setup.sh demo|test|deps|build" >&2; exit 2 ;;
esac
