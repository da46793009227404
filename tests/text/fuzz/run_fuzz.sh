#!/bin/sh
# Runs one libFuzzer target briefly in a scratch directory (crash files land
# there, not in the source tree): run_fuzz.sh TARGET [--seeds DIR] [libFuzzer
# options]. The seed corpus is copied first, since libFuzzer adds the inputs
# it finds to the corpus directory it is given.
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
