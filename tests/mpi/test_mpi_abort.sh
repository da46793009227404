#!/usr/bin/env bash
# A fatal error on one rank ends every rank: no hang. The probe's rank 1
# aborts while the others wait in a barrier; the job must end non-zero
# within the timeout, with the rank's message on stderr.
set -u
probe=$1
start=$(date +%s)
out=$(timeout 60 mpirun -np 3 --oversubscribe "$probe" 2>&1)
status=$?
elapsed=$(( $(date +%s) - start ))
if [ $status -eq 124 ]; then
  echo "[  FAILED  ] abort_all_ranks: the job hung until the timeout"; exit 1
fi
if [ $status -eq 0 ] || ! grep -q "kpo: rank 1: injected failure" <<<"$out"; then
  echo "$out"; echo "[  FAILED  ] abort_all_ranks: status $status"; exit 1
fi
echo "[       OK ] abort_all_ranks (ended with status $status after ${elapsed}s)"
