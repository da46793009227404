#!/bin/sh
# Stands in for the fuzz targets when clang or libFuzzer is missing.
echo "SKIPPED: $1 needs clang with libFuzzer (-fsanitize=fuzzer,address), not found at configure time"
exit 77
