#!/usr/bin/env bash
# The README's first command: builds referee, generates small models in real formats and inspects
# them, then builds the smoke-profile lineage zoo (models of known ancestry, about a minute) and
# traces a few of its pairs: a fine-tune, an independent model trained on the same data, a copy
# disguised by every function-preserving obfuscation, and a model with borrowed layers. The HTML
# report lands in build/demo/trace.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target referee make_demo_model
build/make_demo_model build/demo
for model in build/demo/llama-mini build/demo/llama-mini.Q8_0.gguf build/demo/moe-mini; do
  echo
  echo "\$ referee inspect $model"
  build/referee inspect "$model"
done
echo
echo "\$ referee zoo build build/demo/zoo --profile smoke"
build/referee zoo build build/demo/zoo --profile smoke --corpus data/corpus
zoo=build/demo/zoo/models
echo
echo "\$ referee trace base-a a-sft base-b a-all-obfuscations borrowed-layers (text report of the pairs with base-a)"
build/referee trace "$zoo/base-a" "$zoo/a-sft" "$zoo/base-b" "$zoo/a-all-obfuscations" "$zoo/borrowed-layers" \
  --html build/demo/trace.html | awk '/^== /{show = ($2 == "base-a")} show'
echo "(the full report of all ten pairs, with layer heatmaps: build/demo/trace.html)"
