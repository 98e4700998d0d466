#!/usr/bin/env bash
# The GPU-host runner. Two halves, one script:
#
#   scripts/gpu-host.sh bundle            (here, on a build machine with nvcc; no GPU needed)
#       Builds with the CUDA kernels required, then packs everything a run needs into
#       target/gpu-bundle/: a Java 17 runtime image, the library jar (natives inside), the test and
#       benchmark classes, every dependency jar, and the JUnit console launcher.
#
#   scripts/gpu-host.sh run [STEPS] [OUT]  (on the GPU host, from the repository root, bundle carried)
#       STEPS: comma-separated, default "info,tests,repro,sanitizer,bench,pytorch":
#         info       java -jar gradshape.jar info                     -> info.txt
#         tests      the whole JUnit suite, CUDA backend required     -> tests.txt, junit/
#                    (the CUDA parity invocations of every family, the emulation run included)
#         repro      the host-side defect repros of issue 11 (F1 pending foreign error, F2 caller's
#                    device, F3 non-blocking stream, F11), CUDA required -> repro.txt
#         sanitizer  compute-sanitizer on the GPU tests: memcheck (leak check) over every GPU test,
#                    racecheck and synccheck over the kernel parity tests -> sanitizer-*.txt
#         bench      the JMH benchmarks on CUDA at the issue's sizes  -> jmh-*.json, jmh-*.txt
#         pytorch    the PyTorch baselines in bench/pytorch/          -> pytorch-*.json, .txt
#       Everything lands in OUT/results.tgz, and the short form of each step in OUT/summary.txt
#       (the device tool brings back at most 8 files). OUT defaults to $OUT, else target/gpu-out.
#       JMH_ITERATIONS (environment) overrides "-f 1 -wi 3 -i 5 -w 1s -r 1s".
#
# With the device tool:  scripts/gpu-host.sh bundle, then (each call under 10 minutes)
#   run(command="bash scripts/gpu-host.sh run info,tests,repro", carry=["target/gpu-bundle"])
#   run(command="bash scripts/gpu-host.sh run sanitizer", carry=["target/gpu-bundle"])
#   run(command="bash scripts/gpu-host.sh run bench,pytorch", carry=["target/gpu-bundle"])
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-bundle
junit_console_version=1.11.4

case "${1:-}" in
bundle)
    mvn -B -q package -DskipTests -Dgradshape.cuda=required
    rm -rf "$bundle/lib" "$bundle/app"
    mkdir -p "$bundle/lib" "$bundle/app"
    [ -s "$bundle/jre17.tgz" ] || {
        if [ -x ../shared/device/make-jre.sh ]; then
            ../shared/device/make-jre.sh "$bundle"
        else
            jdk=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
            tmp=$(mktemp -d)
            "$jdk/bin/jlink" --add-modules java.base,jdk.unsupported,java.management,java.logging,java.xml,jdk.management,java.naming,jdk.zipfs \
                --strip-debug --no-header-files --no-man-pages --compress=2 --output "$tmp/jre17"
            tar czf "$bundle/jre17.tgz" -C "$tmp" jre17 && rm -rf "$tmp"
        fi
    }
    cp target/gradshape.jar "$bundle/app/"
    (cd target/test-classes && jar cf "../../$bundle/app/gradshape-tests.jar" .)
    mvn -B -q dependency:copy-dependencies -DincludeScope=test -DoutputDirectory="$bundle/lib"
    mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:$junit_console_version \
        -DoutputDirectory="$bundle/app"
    du -sh "$bundle"
    echo "bundle ready: carry $bundle and run: bash scripts/gpu-host.sh run"
    ;;
run)
    steps=${2:-info,tests,repro,sanitizer,bench,pytorch}
    dest=${3:-${OUT:-target/gpu-out}}
    out=$(mktemp -d)/gpu-results
    mkdir -p "$out" "$dest"
    [ -d "$bundle/app" ] || { echo "gpu-host.sh: $bundle missing: run 'scripts/gpu-host.sh bundle' first and carry it" >&2; exit 2; }
    [ -x /tmp/jre17/bin/java ] || tar xzf "$bundle/jre17.tgz" -C /tmp
    java=/tmp/jre17/bin/java
    cp="$bundle/app/gradshape.jar:$bundle/app/gradshape-tests.jar:$(ls "$bundle"/lib/*.jar | tr '\n' ':')"
    console="$bundle/app/junit-platform-console-standalone-$junit_console_version.jar"
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true; date -u; } > "$out/device.txt" 2>&1
    set +e  # every step runs even when one fails; the exit status says whether any did
    (
    status=0
    for step in ${steps//,/ }; do
        echo "== $step"
        case "$step" in
        info)
            "$java" -jar "$bundle/app/gradshape.jar" info | tee "$out/info.txt" || status=1 ;;
        tests)
            "$java" -Dgradshape.test.cuda=required -jar "$console" execute --class-path "$cp" --scan-class-path \
                --details=tree --reports-dir "$out/junit" > "$out/tests.txt" 2>&1 || status=1
            tail -n 25 "$out/tests.txt" ;;
        repro)
            "$java" -Dgradshape.test.cuda=required -jar "$console" execute --class-path "$cp" \
                --select-class io.gradshape.CudaHostSideTest --details=tree > "$out/repro.txt" 2>&1 || status=1
            tail -n 25 "$out/repro.txt" ;;
        sanitizer)
            # The GPU invocations only (TestBackends keeps just CUDA, plus the @RequiresCuda classes):
            # the tools slow every CUDA call, and CPU invocations would only add time. racecheck and
            # synccheck (shared-memory races, barrier misuse) run over the kernel families' parity tests,
            # memcheck over everything that touches the GPU. SANITIZER_TOOLS picks a subset.
            for tool in ${SANITIZER_TOOLS:-memcheck racecheck synccheck}; do
                classes='.*(SpatialDependence|ScaledSgd|PowerGrad)Test'
                extra=()
                if [ "$tool" = memcheck ]; then
                    classes='.*(Cuda|SpatialDependence|ScaledSgd|PowerGrad).*Test'
                    extra=(--leak-check full)
                fi
                compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 3 \
                    "$java" -Dgradshape.test.cuda=required -Dgradshape.test.backends=cuda -jar "$console" execute \
                    --class-path "$cp" --scan-class-path --include-classname "$classes" \
                    > "$out/sanitizer-$tool.txt" 2>&1 || status=1
                echo "-- $tool"
                grep -E "ERROR SUMMARY|tests (successful|failed)" "$out/sanitizer-$tool.txt" || tail -n 20 "$out/sanitizer-$tool.txt"
            done ;;
        bench)
            # The issue's GPU sizes; the benchmarks' own defaults are small CPU sizes.
            iterations=${JMH_ITERATIONS:--f 1 -wi 3 -i 5 -w 1s -r 1s}
            for bench in "SpatialDependenceBench -p shape=512x64x56x56" "ScaledSgdBench" \
                         "PowerGradBench -p shape=1000x65536,32000x8192,10x1048576"; do
                name=${bench%% *}
                # shellcheck disable=SC2086
                "$java" -cp "$cp" org.openjdk.jmh.Main $bench -p backend=cuda $iterations \
                    -rf json -rff "$out/jmh-$name.json" > "$out/jmh-$name.txt" 2>&1 || status=1
                sed -n '/^Benchmark/,$p' "$out/jmh-$name.txt"
            done ;;
        pytorch)
            for script in bench/pytorch/*.py; do
                name=$(basename "$script" .py)
                PYTHONUNBUFFERED=1 python3 "$script" "$out" > "$out/pytorch-$name.txt" 2>&1 || status=1
                cat "$out/pytorch-$name.txt"
            done ;;
        *) echo "gpu-host.sh: unknown step '$step'" >&2; exit 2 ;;
        esac
    done
    exit $status
    ) 2>&1 | tee "$out/summary.txt"
    status=${PIPESTATUS[0]}
    cp "$out/summary.txt" "$dest/summary.txt"
    tar czf "$dest/results.tgz" -C "$(dirname "$out")" gpu-results
    echo "results: $dest/results.tgz, summary: $dest/summary.txt"
    exit $status
    ;;
*)
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
