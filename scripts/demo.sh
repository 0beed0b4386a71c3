#!/usr/bin/env bash
# The README's first command: builds referee, generates small models in real formats and inspects
# them, then builds the smoke-profile lineage zoo (models of known ancestry, about a minute) and
# traces a few of its pairs: a fine-tune, an independent model trained on the same data, a copy
# disguised by every function-preserving obfuscation, and a model with borrowed layers. The HTML
# report lands in build/demo/trace.html. Last, the benchmark track: a small model trained from
# scratch (seconds), served by `referee serve-model`, runs every bundled task (Korean benchmark
# formats, sample items written for the project) over HTTP, again from the cache, and in process.
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

echo
echo "\$ referee train --config configs/eval-demo.json --out build/demo/eval-model   (353k parameters, seconds)"
build/referee train --config configs/eval-demo.json --out build/demo/eval-model | tail -n 1
tasks=$(build/referee eval --list --json | sed -n 's/^ *"name": "\(.*\)",$/\1/p' | paste -sd, -)
echo
echo "\$ referee eval --list"
build/referee eval --list
build/referee serve-model build/demo/eval-model --port 0 > build/demo/serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "http://" build/demo/serve.log && break; sleep 0.1; done
url=$(grep -o "http://127.0.0.1:[0-9]*" build/demo/serve.log)
rm -rf build/demo/eval-results
echo
echo "\$ referee eval --tasks $tasks --model-url $url --model eval-model --output build/demo/eval-results/served"
build/referee eval --tasks "$tasks" --model-url "$url" --model eval-model --output build/demo/eval-results/served
echo
echo "\$ (the same command again: every answer comes from the cache)"
build/referee eval --tasks "$tasks" --model-url "$url" --model eval-model --output build/demo/eval-results/served | tail -n 1
echo
echo "\$ referee eval --tasks $tasks --engine build/demo/eval-model --output build/demo/eval-results/engine"
build/referee eval --tasks "$tasks" --engine build/demo/eval-model --output build/demo/eval-results/engine | tail -n 3
echo "(results in lm-evaluation-harness's shape, per-sample JSONL and the request cache: build/demo/eval-results/)"
