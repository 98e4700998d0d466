#!/usr/bin/env bash
# gradshape's CPU kernels against PyTorch CPU (and, for spatial dependence, a NumPy + fast_histogram
# implementation of the reference loop) in one command, from a fresh clone:
#
#   bench/cpu-side-by-side.sh [--quick] [--threads 1,2] [--rounds 5] [--only pgt,sgs,vgg,sgd]
#
# Installs what it needs when missing (Debian: python3-torch, python3-fast-histogram, python3-numpy;
# needs root or sudo), builds gradshape when target/ has no build (CPU only: CUDA plays no part
# here), builds the copy-bandwidth tool, then runs bench/cpu/side_by_side.py, which interleaves the
# runs and prints the ratio tables (also written to target/cpu-side-by-side.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3

need=()
"$PY" -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
"$PY" -c 'import torch' 2>/dev/null || need+=(python3-torch)
"$PY" -c 'import fast_histogram' 2>/dev/null || need+=(python3-fast-histogram)
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
command -v cc >/dev/null || { echo "cc (a C compiler) is needed for the copy tool" >&2; exit 1; }

if [ ! -f target/cp.txt ] || [ ! -f target/test-classes/io/gradshape/bench/CpuSideBySide.class ] \
   || ! ls target/classes/io/gradshape/natives/*/libjnigradshape.so >/dev/null 2>&1; then
  echo "building gradshape (CPU only)"
  mvn -B -q test-compile dependency:build-classpath -Dmdep.outputFile=target/cp.txt -Dgradshape.cuda=off
fi
cc -O2 -pthread bench/cpu/copy_bandwidth.c -o target/copy_bandwidth
CP="target/classes:target/test-classes:$(cat target/cp.txt)"
exec "$PY" bench/cpu/side_by_side.py --classpath "$CP" --copy-tool target/copy_bandwidth "$@"
