#!/usr/bin/env bash
# Installs the baseline of bench/trace_numpy.py: Debian's NumPy and SciPy, with the
# multi-threaded OpenBLAS (without it NumPy falls back to the slow reference BLAS).
# Benchmark set-up only: referee itself needs none of this.
set -euo pipefail
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q python3-numpy python3-scipy libopenblas0-pthread </dev/null
