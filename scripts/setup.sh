#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (as root, or with sudo):
#   scripts/setup.sh demo   install dependencies, build, run the embedded default
#   scripts/setup.sh test   install dependencies, build, run the whole test suite:
#                           first the unit, text and cli suites under ASan + UBSan
#                           (the asan stage below), then every suite; one count
#                           over both. KPO_ASAN=0, or naming tests/suites
#                           (scripts/setup.sh test --suite gpu), skips the asan stage.
#   scripts/setup.sh asan   the asan stage alone: a build in build-asan with
#                           -fsanitize=address,undefined (CUDA and NCCL off: nvcc
#                           objects and sanitizers do not mix), its tests run with
#                           tests/sanitizers/ settings; every finding fails it
#   scripts/setup.sh deps | build   just those stages
# Every stage is idempotent: packages already present are not reinstalled and
# an existing build directory is reconfigured, not recreated.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${KPO_BUILD_DIR:-build}
ASAN_BUILD_DIR=${KPO_ASAN_BUILD_DIR:-build-asan}
# The suites the asan stage runs: kpo's own code, without MPI ranks or training
# runs (those take minutes under ASan and their leaks are Open MPI's).
ASAN_SUITES=(--suite unit --suite text --suite cli)

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

# The ASan + UBSan build: MPI and HDF5 on as in the main build; UBSan
# findings abort (-fno-sanitize-recover) rather than print and go on; frame
# pointers kept so the reports' stacks are whole. Built by clang: gcc 12's
# combined ASan + UBSan runtime writes UBSan reports to stderr whatever
# log_path says, clang's honours it. Its test log and reports are removed
# first, so a build that fails counts as a failure, not as the last run's.
build_asan() {
  rm -rf "$ASAN_BUILD_DIR/meson-logs/testlog.json" "$ASAN_BUILD_DIR/sanitizer-reports"
  local options=(-Db_sanitize=address,undefined -Db_lundef=false
    -Dcuda=disabled -Dnccl=disabled -Dmpi=enabled -Dhdf5=enabled
    "-Dc_args=-fno-sanitize-recover=undefined -fno-omit-frame-pointer")
  if [ -d "$ASAN_BUILD_DIR/meson-private" ]; then
    meson setup --reconfigure "$ASAN_BUILD_DIR" "${options[@]}" >/dev/null || return 1
  else
    CC=clang meson setup "$ASAN_BUILD_DIR" "${options[@]}" >/dev/null || return 1
  fi
  ninja -C "$ASAN_BUILD_DIR" || return 1
}

# Reports go to files under $ASAN_BUILD_DIR/sanitizer-reports (log_path), not
# to the tests' stderr: a test that expects kpo to fail would otherwise pass
# over a leak on that error path. summarize_results.py counts the directory
# as one more case, failed when any report is there. Leak stacks use the fast
# (frame-pointer) unwinder: whole for kpo's code, and these suites start no
# MPI; suites that do need fast_unwind_on_malloc=0 too (tests/sanitizers/
# lsan.supp), at four times the run time.
asan_tests() {
  local reports="$PWD/$ASAN_BUILD_DIR/sanitizer-reports"
  mkdir -p "$reports"
  ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:log_path=$reports/asan" \
  LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
  OMPI_MCA_mca_base_component_disable_dlclose=1 \
    meson test -C "$ASAN_BUILD_DIR" --print-errorlogs --num-processes 2 "${ASAN_SUITES[@]}"
}

# The asan stage: build and test; 0 only when every test passed and no
# sanitizer wrote a report.
asan_stage() {
  local status=0
  echo "setup: asan stage (unit, text, cli under ASan + UBSan in $ASAN_BUILD_DIR)"
  if build_asan; then asan_tests || status=$?; else echo "setup: the ASan build failed" >&2; status=1; fi
  return $status
}

# Runs the main build's tests and prints the one count; extra arguments go to
# meson test. With none (and KPO_ASAN not 0) the asan stage runs first and
# its tests and reports count too.
run_tests() {
  local status=0 logs=("$BUILD_DIR/meson-logs/testlog.json") reports=()
  if [ $# -eq 0 ] && [ "${KPO_ASAN:-1}" != 0 ]; then
    asan_stage || status=1
    logs+=("$ASAN_BUILD_DIR/meson-logs/testlog.json")
    reports=(--sanitizer-reports "$ASAN_BUILD_DIR/sanitizer-reports")
  fi
  meson test -C "$BUILD_DIR" --print-errorlogs --num-processes 2 "$@" || status=$?
  /usr/bin/python3 tests/summarize_results.py "${logs[@]}" "${reports[@]}" || status=1
  return $status
}

case "${1:-}" in
  deps) install_deps ;;
  build) install_deps; build ;;
  demo) install_deps; build; KPO_BIN="$BUILD_DIR/kpo" bash scripts/demo.sh ;;
  test) shift; install_deps; build; run_tests "$@" ;;
  asan)
    install_deps
    status=0
    asan_stage || status=1
    /usr/bin/python3 tests/summarize_results.py "$ASAN_BUILD_DIR/meson-logs/testlog.json" \
      --sanitizer-reports "$ASAN_BUILD_DIR/sanitizer-reports" || status=1
    exit $status ;;
  *) echo "usage: scripts/setup.sh demo|test|asan|deps|build" >&2; exit 2 ;;
esac
