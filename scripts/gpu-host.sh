#!/usr/bin/env bash
# The GPU-host runner. Two halves, one script:
#
#   scripts/gpu-host.sh bundle            (here, on a build machine with nvcc; no GPU needed)
#       Builds with the CUDA kernels required, then packs everything a run needs into
#       target/gpu-bundle/: a Java 17 runtime image, the library jar (natives inside), the test and
#       benchmark classes, every dependency jar, and the JUnit console launcher.
#
#   scripts/gpu-host.sh run [STEPS] [OUT]  (on the GPU host, from the repository root, bundle carried)
#       STEPS: comma-separated, default "info,tests,sanitizer,bench,pytorch":
#         info       java -jar gradshape.jar info                     -> OUT/info.txt
#         tests      the whole JUnit suite, CUDA backend required     -> OUT/tests.txt, OUT/junit/
#         sanitizer  compute-sanitizer memcheck over the GPU tests    -> OUT/sanitizer.txt
#         bench      the JMH benchmarks with -p backend=cuda          -> OUT/jmh.json, OUT/jmh.txt
#         pytorch    the PyTorch baselines in bench/pytorch/          -> OUT/pytorch-*.json, .txt
#       OUT defaults to $OUT (the device tool's folder that comes back) or target/gpu-out.
#       JMH_ARGS (environment) overrides the JMH selection and iteration counts.
#
# With the device tool:  scripts/gpu-host.sh bundle, then
#   run(command="bash scripts/gpu-host.sh run", carry=["target/gpu-bundle"])
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
    steps=${2:-info,tests,sanitizer,bench,pytorch}
    out=${3:-${OUT:-target/gpu-out}}
    mkdir -p "$out"
    [ -d "$bundle/app" ] || { echo "gpu-host.sh: $bundle missing: run 'scripts/gpu-host.sh bundle' first and carry it" >&2; exit 2; }
    [ -x /tmp/jre17/bin/java ] || tar xzf "$bundle/jre17.tgz" -C /tmp
    java=/tmp/jre17/bin/java
    cp="$bundle/app/gradshape.jar:$bundle/app/gradshape-tests.jar:$(ls "$bundle"/lib/*.jar | tr '\n' ':')"
    console="$bundle/app/junit-platform-console-standalone-$junit_console_version.jar"
    status=0
    { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true; date -u; } > "$out/device.txt" 2>&1
    for step in ${steps//,/ }; do
        echo "== $step"
        case "$step" in
        info)
            "$java" -jar "$bundle/app/gradshape.jar" info | tee "$out/info.txt" || status=1 ;;
        tests)
            "$java" -Dgradshape.test.cuda=required -jar "$console" execute --class-path "$cp" --scan-class-path \
                --details=tree --reports-dir "$out/junit" > "$out/tests.txt" 2>&1 || status=1
            tail -n 25 "$out/tests.txt" ;;
        sanitizer)
            # The GPU tests only (tagged by @RequiresCuda or running over TestBackends.all()); JIT and
            # GC stay on the host, so memcheck sees only our kernels and copies.
            compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 \
                "$java" -Dgradshape.test.cuda=required -jar "$console" execute --class-path "$cp" \
                --scan-class-path --include-classname '.*(Cuda|SpatialDependence|ScaledSgd|PowerGrad).*Test' \
                > "$out/sanitizer.txt" 2>&1 || status=1
            grep -E "ERROR SUMMARY|tests (successful|failed)" "$out/sanitizer.txt" || tail -n 20 "$out/sanitizer.txt" ;;
        bench)
            # shellcheck disable=SC2086
            "$java" -cp "$cp" org.openjdk.jmh.Main ${JMH_ARGS:--p backend=cuda -f 1 -wi 3 -i 5 -w 1s -r 1s} \
                -rf json -rff "$out/jmh.json" > "$out/jmh.txt" 2>&1 || status=1
            sed -n '/^Benchmark/,$p' "$out/jmh.txt" ;;
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
    ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
