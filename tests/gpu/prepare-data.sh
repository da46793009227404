#!/usr/bin/env bash
# Run HERE, before a GPU session: copies what run.sh's `kpo train` stages
# need from the shared data folder (../shared/data, which does not travel to
# the device machine) into .gpu-data/ at the repo root, which git ignores.
# The device call carries it next to .gpu-debs (carry: [".gpu-debs",
# ".gpu-data"]). About 4.5 MB:
#   qwen_tokenizer/                vocab.json, merges.txt, tokenizer_config.json, LICENSE
#   qwen3-0.6b/config.json         Qwen3-0.6B-Base (reconstructed, see SOURCES.md §5)
#   qwen3-4b/config.json           Qwen3-4B-Base
#   dapo_math_slice.jsonl          the first 512 DAPO-Math-17k prompts (id, prompt, answer)
#   SOURCES.md                     where the files came from
#
#   tests/gpu/prepare-data.sh [SHARED_DATA_DIR]   (default: ../shared/data, then /work/shared/data)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
src=${1:-}
if [ -z "$src" ]; then
  for d in "$root/../shared/data" /work/shared/data; do
    [ -f "$d/dapo_math_17k.jsonl" ] && { src=$d; break; }
  done
fi
if [ -z "$src" ] || [ ! -f "$src/dapo_math_17k.jsonl" ]; then
  echo "prepare-data: no shared data folder (with dapo_math_17k.jsonl) found; pass its path" >&2
  exit 1
fi
dest=$root/.gpu-data
rm -rf "$dest"
mkdir -p "$dest/qwen_tokenizer" "$dest/qwen3-0.6b" "$dest/qwen3-4b"
for f in vocab.json merges.txt tokenizer_config.json LICENSE.Qwen3-4B-Base; do
  cp "$src/qwen_tokenizer/$f" "$dest/qwen_tokenizer/"
done
cp "$src/qwen3_configs/Qwen3-0.6B-Base.config.RECONSTRUCTED.json" "$dest/qwen3-0.6b/config.json"
cp "$src/qwen3_configs/Qwen3-4B-Base.config.json" "$dest/qwen3-4b/config.json"
# 512 prompts: 16 steps of 32, more than the one-step stages read.
head -n 512 "$src/dapo_math_17k.jsonl" >"$dest/dapo_math_slice.jsonl"
cp "$src/SOURCES.md" "$dest/"
chmod -R u+w "$dest"
echo "prepare-data: $(find "$dest" -type f | wc -l) files, $(du -sh "$dest" | cut -f1) in $dest (from $src)"
