#!/usr/bin/env bash
# Configures and builds the sanitized build (build-asan/) that scripts/sanitize.sh and
# scripts/fuzz.sh share: clang, AddressSanitizer and UndefinedBehaviorSanitizer (any report
# aborts), libFuzzer's coverage instrumentation, -O1 with line tables (the tests, the command line
# and the tools at -O0 without coverage: CMakeLists.txt, referee_sanitized_driver). One build serves
# both the test suite and the fuzz targets, so CI compiles it once.
#   scripts/sanitized-build.sh [TARGET...]     default: everything
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DREFEREE_SANITIZE=ON -DREFEREE_FUZZ=ON >/dev/null
if [ "$#" -eq 0 ]; then
  cmake --build build-asan
else
  cmake --build build-asan --target "$@"
fi
