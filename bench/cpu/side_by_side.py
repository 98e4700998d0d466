"""gradshape's CPU kernels side by side with what a user would otherwise run on the CPU.

Run through bench/cpu-side-by-side.sh (it installs the packages, builds gradshape and the copy tool).
Per kernel and shape, and per thread count (1 and 2 unless --threads says otherwise), R rounds; each
round runs, back to back, gradshape (in a JVM kept alive, io.gradshape.bench.CpuSideBySide), the
baselines and the machine's copy floor for the same bytes, K calls each, and keeps each one's median
call time. A ratio is the median over rounds of that round's baseline time / gradshape time, so load
from other processes that comes and goes hits both sides of a ratio alike.

  PGT   gradshape PowerGrad (loss + gradient, MEAN, alpha 0.25) against PyTorch's
        two-op   torch.softmax(alpha z) then scatter_add_ of -1 at the labels, plus the loss
                 F.cross_entropy(z, y) (forward only): what PGT needs, in two ops and a loss
        ce       F.cross_entropy forward + backward (alpha = 1: what gradshape does at alpha = 0.25)
        copy     memcpy of the logits into the gradient: the 8 bytes per element floor
        incache  gradshape on an L2-resident 1000 x 64 problem: the exponential-bound ceiling
  SGS   gradshape SpatialDependence.compute (reference mode; 64 fixed bins over the channel range)
        against a NumPy + fast_histogram implementation of the reference loop written from
        docs/SPEC.md section 1 (per channel and displacement: slices, Sturges bins, per-side ranges,
        histogram2d, entropies, T_k, NaN-mean, G), single-threaded as the reference is. Its S is
        compared with gradshape's (max |difference| printed).
  SGD   gradshape ScaledSgd.step over the ResNet-18 / ResNet-50 parameter sets against
        grad.mul_(G) for every 3x3 / 7x7 conv then torch.optim.SGD(foreach=True).step(), and the
        copy floor of the same 20 bytes per parameter.

Prints markdown tables (time in ms, throughput, ratios) and writes them to --out too.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from fast_histogram import histogram2d

ALPHA = 0.25


class Gradshape:
    """The JVM side: one command line in, one JSON line out."""

    def __init__(self, classpath):
        self.proc = subprocess.Popen(["java", "-cp", classpath, "io.gradshape.bench.CpuSideBySide"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, *words):
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            sys.exit("gradshape driver exited (see its stderr above)")
        answer = json.loads(line)
        if "error" in answer:
            sys.exit(f"gradshape driver: {answer['error']} (command: {' '.join(map(str, words))})")
        return answer

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class Copy:
    def __init__(self, tool):
        self.tool = tool

    def gbps(self, nbytes, threads, reps):
        out = subprocess.run([self.tool, str(int(nbytes)), str(threads), str(reps)], check=True,
                             capture_output=True, text=True).stdout
        return float(out)


def median_ms(fn, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def fmt_ratio(values):
    return f"{statistics.median(values):.2f}" if values else "-"


# ---- PGT ----------------------------------------------------------------------------------------

def pgt_cases(args, gs, copy, tmp, table):
    shapes = [(1000, 4096), (10, 65536), (100, 16384), (32000, 128)]
    scaling = [(1000, 1024), (1000, 16384), (1000, 65536)]
    if args.quick:
        scaling = []
    table.append("| C x N | threads | gradshape ms | GB/s (8 B/elem) | copy GB/s (same bytes) | % of copy "
                 "| two-op + loss ms | two-op / gs | ce fwd+bwd ms | ce / gs |")
    table.append("|---|---|---|---|---|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(42)
    for classes, rows in shapes + scaling:
        z = torch.rand(rows, classes, generator=gen) * 8 - 4
        y = torch.randint(0, classes, (rows,), generator=gen)
        zf, yf = os.path.join(tmp, "z.npy"), os.path.join(tmp, "y.npy")
        np.save(zf, z.numpy())
        np.save(yf, y.numpy().astype(np.int32))
        minus = torch.full((rows, 1), -1.0)
        leaf = z.clone().requires_grad_(True)

        def two_op():
            g = torch.softmax(ALPHA * z, 1)
            g.scatter_add_(1, y.view(-1, 1), minus)
            return g, F.cross_entropy(z, y)

        def ce():
            leaf.grad = None
            F.cross_entropy(leaf, y).backward()

        # Same input, both sides: the loss, and row 0 of the gradient (gradshape's is MEAN, scaled back).
        g_two, loss_two = two_op()
        first = gs.ask("pgt", zf, yf, ALPHA, 1)
        loss_err = abs(first["loss"] - loss_two.item())
        grad_err = float(np.max(np.abs(np.array(first["grad0"]) - g_two[0, :len(first["grad0"])].numpy())))
        if loss_err > 1e-4 * (1 + abs(loss_two.item())) or grad_err > 1e-5:
            sys.exit(f"PGT {classes}x{rows}: gradshape and PyTorch disagree (loss {loss_err:.3g}, grad {grad_err:.3g})")
        calls = max(3, min(20, int(2e8 / (rows * classes))))
        for threads in args.threads:
            gs.ask("threads", threads)
            torch.set_num_threads(threads)
            rounds = {"gs": [], "two": [], "ce": [], "copy": []}
            for _ in range(args.rounds):
                rounds["gs"].append(statistics.median(gs.ask("pgt", zf, yf, ALPHA, calls)["ms"]))
                rounds["two"].append(median_ms(two_op, calls))
                rounds["ce"].append(median_ms(ce, calls))
                rounds["copy"].append(copy.gbps(4 * rows * classes, threads, calls))
            t = statistics.median(rounds["gs"])
            gbps = 8e-6 * rows * classes / t
            cp = statistics.median(rounds["copy"])
            r_two = [a / b for a, b in zip(rounds["two"], rounds["gs"])]
            r_ce = [a / b for a, b in zip(rounds["ce"], rounds["gs"])]
            table.append(f"| {classes} x {rows} | {threads} | {t:.3f} | {gbps:.1f} | {cp:.1f} | {100 * gbps / cp:.0f} % "
                         f"| {statistics.median(rounds['two']):.3f} | {fmt_ratio(r_two)} "
                         f"| {statistics.median(rounds['ce']):.3f} | {fmt_ratio(r_ce)} |")
            print(table[-1], flush=True)
    # The ceiling: the same kernel on an L2-resident problem, so that memory is not what it waits on.
    z = torch.rand(64, 1000, generator=gen) * 8 - 4
    y = torch.randint(0, 1000, (64,), generator=gen)
    zf, yf = os.path.join(tmp, "z.npy"), os.path.join(tmp, "y.npy")
    np.save(zf, z.numpy())
    np.save(yf, y.numpy().astype(np.int32))
    table.append("")
    table.append("| in-cache ceiling (1000 x 64, 256 KiB of logits) | threads | gradshape us | G elements/s | GB/s (8 B/elem) |")
    table.append("|---|---|---|---|---|")
    for threads in args.threads:
        gs.ask("threads", threads)
        t = statistics.median([statistics.median(gs.ask("pgt", zf, yf, ALPHA, 200)["ms"]) for _ in range(args.rounds)])
        table.append(f"| alpha {ALPHA} | {threads} | {1e3 * t:.1f} | {64e-6 * 1000 / t:.2f} | {8 * 64e-6 * 1000 / t:.1f} |")
        print(table[-1], flush=True)


# ---- SGS ----------------------------------------------------------------------------------------

def half_window(k):
    r = (k - 1) // 2
    return [(u // k - r, u % k - r) for u in range((k * k - 1) // 2)]


def pairs_of(n, h, w, k, pad):
    hp, wp = h + 2 * pad, w + 2 * pad
    return sum(n * (hp - abs(dy)) * (wp - abs(dx)) for dy, dx in half_window(k))


def entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def numpy_reference(x, k, pad, tk=5.0):
    """SPEC.md section 1, default mode, one channel and displacement at a time (float64 binning by
    fast_histogram: bin = (v - lo) * (B / (hi - lo)), values outside [lo, hi) dropped)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    hp, wp = h + 2 * pad, w + 2 * pad
    r = (k - 1) // 2
    nmi = np.full((c, k, k), np.nan)
    for ch in range(c):
        plane = xp[:, ch]
        for dy, dx in half_window(k):
            p = plane[:, max(0, -dy):hp - max(0, dy), max(0, -dx):wp - max(0, dx)].ravel()
            q = plane[:, max(0, dy):hp - max(0, -dy), max(0, dx):wp - max(0, -dx)].ravel()
            bins = 1 + math.ceil(math.log2(p.size))
            rng = [[float(p.min()), float(p.max()) + 1e-12], [float(q.min()), float(q.max()) + 1e-12]]
            hist = histogram2d(p, q, bins=bins, range=rng)
            hpq = entropy(hist)
            v = (entropy(hist.sum(1)) + entropy(hist.sum(0)) - hpq) / hpq if hpq > 0 else np.nan
            nmi[ch, r + dy, r + dx] = nmi[ch, r - dy, r - dx] = v
        nmi[ch, r, r] = 1.0
    t = tk * nmi / ((tk - 1) * nmi + 1)
    t[:, r, r] = 1.0
    s = np.nanmean(t, axis=0)
    return s


def sgs_cases(args, gs, tmp, table):
    rng = np.random.default_rng(7)
    # (name, N, C, H, W, k, pad): the CIFAR setting at 4 batch sizes, a ResNet-18 layer, the 7x7 stem.
    cases = [("CIFAR", 32, 64, 32, 32, 3, 1), ("CIFAR", 64, 64, 32, 32, 3, 1), ("CIFAR", 128, 64, 32, 32, 3, 1),
             ("CIFAR", 256, 64, 32, 32, 3, 1), ("ResNet-18 layer1", 32, 64, 56, 56, 3, 1),
             ("7x7 stem", 16, 3, 224, 224, 7, 3)]
    if args.quick:
        cases = [cases[3]]
    table.append("| input | N x C x H x W, k | threads | pairs | reference ms | G pairs/s | 64 bins ms | G pairs/s "
                 "| NumPy ref ms | ref / gs | max abs S diff |")
    table.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, n, c, h, w, k, pad in cases:
        x = np.maximum(rng.standard_normal((n, c, h, w), dtype=np.float32), 0) if k == 3 else \
            rng.random((n, c, h, w), dtype=np.float32)
        xf = os.path.join(tmp, "x.npy")
        np.save(xf, x)
        pairs = pairs_of(n, h, w, k, pad) * c
        calls = max(2, min(10, int(5e8 / pairs)))
        s_np = numpy_reference(x, k, pad)
        s_gs = np.array(gs.ask("sgs", xf, k, pad, 0, 1)["s"]).reshape(k, k)
        diff = float(np.max(np.abs(s_np - s_gs)))
        for threads in args.threads:
            gs.ask("threads", threads)
            ref, fixed, base = [], [], []
            for _ in range(args.rounds):
                ref.append(statistics.median(gs.ask("sgs", xf, k, pad, 0, calls)["ms"]))
                fixed.append(statistics.median(gs.ask("sgs", xf, k, pad, 64, calls)["ms"]))
                base.append(median_ms(lambda: numpy_reference(x, k, pad), 1))
            tr, tf = statistics.median(ref), statistics.median(fixed)
            table.append(f"| {name} | {n}x{c}x{h}x{w}, {k}x{k} | {threads} | {pairs / 1e6:.1f} M | {tr:.2f} | {pairs / tr / 1e6:.2f} "
                         f"| {tf:.2f} | {pairs / tf / 1e6:.2f} | {statistics.median(base):.0f} "
                         f"| {fmt_ratio([b / a for a, b in zip(ref, base)])} | {diff:.1e} |")
            print(table[-1], flush=True)


def vgg_cases(args, gs, tmp, table):
    """Every distinct conv input of VGG-16 at 224 x 224: fixed 64 bins must not be slower than the reference."""
    rng = np.random.default_rng(11)
    layers = [(3, 224), (64, 224), (64, 112), (128, 112), (128, 56), (256, 56), (256, 28), (512, 28), (512, 14)]
    if args.quick:
        layers = layers[-3:]
    n = 8
    table.append("| VGG-16 input (N = 8) | threads | reference ms | 64 bins ms | reference / 64 bins |")
    table.append("|---|---|---|---|---|")
    for c, hw in layers:
        x = np.maximum(rng.standard_normal((n, c, hw, hw), dtype=np.float32), 0)
        xf = os.path.join(tmp, "x.npy")
        np.save(xf, x)
        for threads in args.threads:
            gs.ask("threads", threads)
            ref, fixed = [], []
            for _ in range(args.rounds):
                ref.append(statistics.median(gs.ask("sgs", xf, 3, 1, 0, 3)["ms"]))
                fixed.append(statistics.median(gs.ask("sgs", xf, 3, 1, 64, 3)["ms"]))
            table.append(f"| {c} x {hw} x {hw} | {threads} | {statistics.median(ref):.2f} | {statistics.median(fixed):.2f} "
                         f"| {fmt_ratio([a / b for a, b in zip(ref, fixed)])} |")
            print(table[-1], flush=True)


# ---- scaled SGD ---------------------------------------------------------------------------------

def resnet_shapes(blocks, bottleneck):
    """(shape, decay) of torchvision's resnet18 / resnet50 parameters, in parameters() order."""
    out = []

    def conv(cout, cin, k):
        out.append(((cout, cin, k, k), True))

    def bn(ch):
        out.extend([((ch,), False), ((ch,), False)])

    conv(64, 3, 7)
    bn(64)
    inplanes = 64
    for planes, count in zip((64, 128, 256, 512), blocks):
        for b in range(count):
            if bottleneck:
                conv(planes, inplanes, 1); bn(planes)
                conv(planes, planes, 3); bn(planes)
                conv(4 * planes, planes, 1); bn(4 * planes)
                if b == 0:
                    conv(4 * planes, inplanes, 1); bn(4 * planes)
                inplanes = 4 * planes
            else:
                conv(planes, inplanes if b == 0 else planes, 3); bn(planes)
                conv(planes, planes, 3); bn(planes)
                if b == 0 and planes != 64:
                    conv(planes, inplanes, 1); bn(planes)
                inplanes = planes
    out.append(((1000, inplanes), True))
    out.append(((1000,), False))
    return out


def sgd_cases(args, gs, copy, tmp, table):
    sets = [("ResNet-18", resnet_shapes((2, 2, 2, 2), False), 11_689_512),
            ("ResNet-50", resnet_shapes((3, 4, 6, 3), True), 25_557_032)]
    table.append("| parameter set | threads | gradshape ms | GB/s (20 B/param) | copy GB/s | mul_ + SGD(foreach) ms | torch / gs |")
    table.append("|---|---|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(3)
    for name, shapes, expected in sets:
        total = sum(math.prod(s) for s, _ in shapes)
        if total != expected:
            sys.exit(f"{name}: shape list has {total} parameters, expected {expected}")
        sf = os.path.join(tmp, "shapes.txt")
        with open(sf, "w") as f:
            for s, decay in shapes:
                scaled = len(s) == 4 and s[2] > 1
                f.write(f"{int(scaled)} {int(decay)} {' '.join(map(str, s))}\n")
        params = [torch.randn(s, generator=gen) for s, _ in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        scaled = [(p, torch.rand(p.shape[2], p.shape[3], generator=gen) + 0.5) for p in params
                  if p.dim() == 4 and p.shape[2] > 1]
        groups = [{"params": [p for p, (_, d) in zip(params, shapes) if d], "weight_decay": 1e-4},
                  {"params": [p for p, (_, d) in zip(params, shapes) if not d], "weight_decay": 0.0}]
        sgd = torch.optim.SGD(groups, lr=0.01, momentum=0.9, foreach=True)
        sgd.step()

        def torch_step():
            for p, g in scaled:
                p.grad.mul_(g)
            sgd.step()

        for threads in args.threads:
            gs.ask("threads", threads)
            torch.set_num_threads(threads)
            ours, theirs, cps = [], [], []
            for _ in range(args.rounds):
                ours.append(statistics.median(gs.ask("sgd", sf, 10)["ms"]))
                theirs.append(median_ms(torch_step, 10))
                cps.append(copy.gbps(10 * total, threads, 10))
            t = statistics.median(ours)
            table.append(f"| {name} ({len(shapes)} tensors, {total / 1e6:.1f} M) | {threads} | {t:.2f} | {20e-6 * total / t:.1f} "
                         f"| {statistics.median(cps):.1f} | {statistics.median(theirs):.2f} "
                         f"| {fmt_ratio([b / a for a, b in zip(ours, theirs)])} |")
            print(table[-1], flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classpath", required=True)
    parser.add_argument("--copy-tool", required=True)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="pgt,sgs,vgg,sgd")
    parser.add_argument("--quick", action="store_true", help="one shape per kernel, for a smoke test")
    parser.add_argument("--out", default="target/cpu-side-by-side.md")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    only = set(args.only.split(","))

    load = os.getloadavg()
    header = [f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; load average before {load[0]:.2f}; PyTorch {torch.__version__}, "
              f"NumPy {np.__version__}; {args.rounds} rounds", ""]
    print(header[0], flush=True)
    gs = Gradshape(args.classpath)
    copy = Copy(args.copy_tool)
    sections = []
    with tempfile.TemporaryDirectory(prefix="gs-side-by-side-") as tmp:
        for key, title, fn in (("pgt", "PowerGrad (alpha 0.25)", lambda t: pgt_cases(args, gs, copy, tmp, t)),
                               ("sgs", "Spatial dependence", lambda t: sgs_cases(args, gs, tmp, t)),
                               ("vgg", "Spatial dependence, VGG-16 layers", lambda t: vgg_cases(args, gs, tmp, t)),
                               ("sgd", "Scaled SGD step", lambda t: sgd_cases(args, gs, copy, tmp, t))):
            if key in only:
                table = [f"### {title}", ""]
                print(table[0], flush=True)
                fn(table)
                sections.append("\n".join(table))
    gs.close()
    load = os.getloadavg()
    footer = f"load average after {load[0]:.2f} (1 min), {load[1]:.2f} (5 min)"
    print(footer)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(header) + "\n" + "\n\n".join(sections) + "\n\n" + footer + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
