#!/usr/bin/env bash
# The CUDA kernels under host emulation (cuda-kernels/emulation/README.md) with the sanitizers:
#
#   scripts/emulation-sanitizers.sh [tsan|asan|all] [FILTER...]
#
#   tsan  ThreadSanitizer, CUDA threads as OS threads (GS_EMU_MODE=threads): races between the threads
#         of a block (a missing __syncthreads or __syncwarp, a plain write where an atomic is needed)
#   asan  AddressSanitizer + UBSan, also OS threads: out-of-bounds global and dynamic shared memory
#         (each block's dynamic shared memory is its own heap block of exactly the launch's size),
#         use after free, integer overflow and other undefined behaviour in kernels and launchers
#   all   both (the default)
#
# FILTER: case names (substrings) as gs_emulation_test takes them; none runs every case. Builds in
# target/emu-tsan and target/emu-asan with CMake (no Maven, no nvcc); exit status non-zero when a
# case fails or a sanitizer reports. Not part of `mvn verify`: OS threads are far slower than the
# fibers CI uses (the README has the timings).
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
[ $# -gt 0 ] && shift
jobs=${GS_JOBS:-2}

run() {  # name, sanitizer, filters...
    local name=$1 sanitize=$2
    shift 2
    local dir=target/emu-$name
    cmake -S cuda-kernels/emulation -B "$dir" -DGS_EMU_SANITIZE="$sanitize" > "$dir.configure.log" 2>&1 || {
        cat "$dir.configure.log"; return 1; }
    cmake --build "$dir" --parallel "$jobs" > "$dir.build.log" 2>&1 || { tail -n 40 "$dir.build.log"; return 1; }
    echo "== $name: $dir/gs_emulation_test $*"
    local start=$SECONDS
    local status=0
    GS_EMU_MODE=threads \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ASAN_OPTIONS="detect_leaks=1 abort_on_error=1" \
    UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1" \
        "$dir/gs_emulation_test" "$@" > "$dir.log" 2>&1 || status=$?
    grep -v '^PASS' "$dir.log" | tail -n 60 || true
    echo "== $name: exit $status, $((SECONDS - start)) s (log: $dir.log)"
    return "$status"
}

status=0
case "$which" in
tsan) run tsan thread "$@" || status=1 ;;
asan) run asan address "$@" || status=1 ;;
all)
    run tsan thread "$@" || status=1
    run asan address "$@" || status=1 ;;
*) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
exit $status
