"""PyTorch baselines for the PowerGrad transform (gradshape's PowerGradBench), on the GPU host.

What a PyTorch user would otherwise run, per case (classes x rows, float32 logits, int64 labels):

  cross_entropy   F.cross_entropy forward + backward (logits.requires_grad, loss.backward()): the
                  ordinary fused softmax-cross-entropy gradient, alpha = 1.
  pgt_two_op      the best two-op PGT gradient: torch.softmax(alpha * z, 1) then subtract the one-hot
                  target in place with scatter_add_ (index targets; touches one element per row).
                  Unscaled (reduction SUM): a MEAN scale would cost PyTorch one more pass, while
                  gradshape applies it for free, so leaving it out favours the baseline.
  pgt_onehot      the same with a dense one-hot target: softmax(alpha * z, 1).sub_(onehot).
  copy            a device-to-device copy of the logits: the 8 bytes per element floor (read the
                  logits once, write the gradient once).

Times with CUDA events after warm-up (median of repeats), prints one line per case and method with
the time and GB/s against the 8-byte floor, and writes power_grad.json into the folder given as the
first argument.

    python bench/pytorch/power_grad.py results/ [--alpha 0.25] [--cases 1000x65536,32000x8192,10x1048576]
"""

import argparse
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F


def timed(fn, warmup, repeats):
    """Median milliseconds of fn() over `repeats` CUDA-event-timed runs, after `warmup` runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check_pgt(z, labels, alpha, grad):
    """The two-op gradient against a float64 reference on a few rows, so the baseline is the real thing."""
    rows = min(64, z.shape[0])
    z64 = z[:rows].double()
    want = torch.softmax(alpha * z64, 1)
    want[torch.arange(rows, device=z.device), labels[:rows]] -= 1.0
    err = (grad[:rows].double() - want).abs().max().item()
    if err > 1e-6:
        raise RuntimeError(f"two-op PGT baseline is wrong: max error {err}")


def run_case(classes, rows, alpha, warmup, repeats):
    device = torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(42)
    z = torch.rand(rows, classes, device=device, generator=gen) * 8 - 4
    labels = torch.randint(0, classes, (rows,), device=device, generator=gen)
    floor_bytes = 8.0 * rows * classes
    results = {}

    leaf = z.clone().requires_grad_(True)

    def cross_entropy():
        leaf.grad = None
        F.cross_entropy(leaf, labels).backward()

    results["cross_entropy"] = timed(cross_entropy, warmup, repeats)

    minus = torch.full((rows, 1), -1.0, device=device)

    def pgt_two_op():
        # softmax(alpha z), then subtract the one-hot target in place.
        g = torch.softmax(alpha * z, 1)
        return g.scatter_add_(1, labels.view(-1, 1), minus)

    results["pgt_two_op"] = timed(pgt_two_op, warmup, repeats)
    check_pgt(z, labels, alpha, pgt_two_op())

    onehot = F.one_hot(labels, classes).float()

    def pgt_onehot():
        return torch.softmax(alpha * z, 1).sub_(onehot)

    results["pgt_onehot"] = timed(pgt_onehot, warmup, repeats)
    del onehot

    out = torch.empty_like(z)

    def copy():
        out.copy_(z)

    results["copy"] = timed(copy, warmup, repeats)

    case = {"classes": classes, "rows": rows, "alpha": alpha, "floor_bytes": floor_bytes, "methods": {}}
    for name, ms in results.items():
        gbps = floor_bytes / (ms * 1e-3) / 1e9
        case["methods"][name] = {"ms": ms, "floor_GBps": gbps}
        print(f"C={classes:>6} N={rows:>8}  {name:<14} {ms:9.4f} ms  {gbps:8.1f} GB/s (8 B/element floor)")
    return case


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--cases", default="1000x65536,32000x8192,10x1048576", help="classes x rows, comma separated")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("power_grad.py: no CUDA device visible to PyTorch")
    os.makedirs(args.out_dir, exist_ok=True)
    cases = []
    for spec in args.cases.split(","):
        classes, rows = (int(v) for v in spec.lower().split("x"))
        cases.append(run_case(classes, rows, args.alpha, args.warmup, args.repeats))
        torch.cuda.empty_cache()
    report = {
        "benchmark": "power_grad",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cases": cases,
    }
    path = os.path.join(args.out_dir, "power_grad.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
