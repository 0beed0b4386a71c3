#!/usr/bin/env bash
# Builds the test suite with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/, shared
# with the fuzz targets: scripts/sanitized-build.sh) and runs it: memory errors, leaks and undefined
# behaviour fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/sanitized-build.sh
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j "$(nproc)"
