#!/bin/sh
# Runs one libFuzzer target briefly in a scratch directory (crash files land
# there, not in the source tree): run_fuzz.sh TARGET [libFuzzer options].
target=$(realpath "$1")
shift
work=$(mktemp -d)
cd "$work" || exit 1
"$target" "$@"
status=$?
cd / && rm -rf "$work"
exit $status
