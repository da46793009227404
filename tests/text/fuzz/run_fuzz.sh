#!/bin/sh
# Runs one libFuzzer target briefly in a scratch directory (crash files land
# there, not in the source tree): run_fuzz.sh TARGET [--seeds DIR] [libFuzzer
# options]. The seed corpus is copied first, since libFuzzer adds the inputs
# it finds to the corpus directory it is given.
# UBSan findings abort the target (built with -fno-sanitize-recover); say
# where they came from. meson test and the asan stage set their own options.
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export UBSAN_OPTIONS
target=$(realpath "$1")
shift
work=$(mktemp -d)
corpus=
if [ "$1" = "--seeds" ]; then
    mkdir "$work/corpus" && cp "$2"/* "$work/corpus/" || exit 1
    corpus="$work/corpus"
    shift 2
fi
cd "$work" || exit 1
"$target" "$@" $corpus
status=$?
cd / && rm -rf "$work"
exit $status
