"""PyTorch baseline for spatial dependence (SGS) histograms: SPEC.md section 1, phases 1 and 2.

What a user would otherwise write on the GPU: per displacement of the first half of the window, the
bin indices of P and Q in float64, flat cell indices (c * D + u) * TB * TB + bP * TB + bQ and one
torch.bincount over all channels. Phase 1 (pair counts, P / Q ranges) is part of the timed work where
the mode needs it, so the figures compare with gradshape's stats + histogram.

Cases (ResNet-18 layer input N=512, C=64, 56x56, 3x3 kernel, pad 1, ReLU-skewed values):
  reference    per-(channel, displacement) P / Q ranges, Sturges bins (B = 22 here)
  fixed64      64 bins, one range per channel (min / max of the padded channel)
  fixed256     256 bins, one range per channel
Before timing, the same functions run on a small random input and their counts are compared exactly with
a straightforward NumPy implementation of the header's binning ("counts match", or exit 1).

Usage: python bench/pytorch/spatial_dependence.py OUT_DIR   (writes OUT_DIR/spatial_dependence.json)
"""
import json
import math
import os
import sys

import numpy as np
import torch

RANGE_PAIRS, RANGE_CHANNEL = 0, 1


def displacements(kh, kw):
    """(dy, dx) of the first half of the window in row-major order (u = 0 .. D-1)."""
    ry, rx = (kh - 1) // 2, (kw - 1) // 2
    return [(u // kw - ry, u % kw - rx) for u in range((kh * kw - 1) // 2)]


def ceil_log2(n):
    return 0 if n <= 1 else (int(n) - 1).bit_length()


def pair_views(xp, dy, dx):
    """P and Q of displacement (dy, dx) as views of the padded map [N, C, Hp, Wp]."""
    hp, wp = xp.shape[2], xp.shape[3]
    i0, i1 = max(0, -dy), hp - max(0, dy)
    j0, j1 = max(0, -dx), wp - max(0, dx)
    if i1 <= i0 or j1 <= j0:
        return None, None
    return xp[:, :, i0:i1, j0:j1], xp[:, :, i0 + dy:i1 + dy, j0 + dx:j1 + dx]


def bin_index(v64, lo, hi, bins):
    """float64 values, per-channel lo / hi / bins broadcast over [N, C, h, w]: (bin, keep), as the header."""
    keep = (lo <= v64) & (v64 < hi)
    b = ((v64 - lo) * (bins / (hi - lo))).to(torch.int64)  # truncation toward zero, as (int)
    return torch.minimum(b, bins.to(torch.int64) - 1), keep


def per_channel(t):
    return t.view(1, -1, 1, 1)


def torch_reference(x, kh, kw, ph, pw, table_bins):
    """Reference mode: ranges per (channel, displacement), Sturges bins. Returns int64 [C, D, TB, TB]."""
    n, c = x.shape[0], x.shape[1]
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    disp = displacements(kh, kw)
    hist = torch.zeros(c * len(disp) * table_bins * table_bins, dtype=torch.int64, device=x.device)
    base = torch.arange(c, device=x.device, dtype=torch.int64).view(1, -1, 1, 1) * (len(disp) * table_bins * table_bins)
    for u, (dy, dx) in enumerate(disp):
        p, q = pair_views(xp, dy, dx)
        if p is None:
            continue
        pairs = p.shape[0] * p.shape[2] * p.shape[3]  # per channel (no zero removal)
        bins = torch.full((c,), float(1 + ceil_log2(pairs)), dtype=torch.float64, device=x.device)
        p64, q64 = p.double(), q.double()
        bp, kp = bin_index(p64, per_channel(p.amin(dim=(0, 2, 3)).double()),
                           per_channel(p.amax(dim=(0, 2, 3)).double() + 1e-12), per_channel(bins))
        bq, kq = bin_index(q64, per_channel(q.amin(dim=(0, 2, 3)).double()),
                           per_channel(q.amax(dim=(0, 2, 3)).double() + 1e-12), per_channel(bins))
        flat = base + u * table_bins * table_bins + bp * table_bins + bq
        hist += torch.bincount(flat[kp & kq], minlength=hist.numel())
    return hist.view(c, len(disp), table_bins, table_bins)


def torch_channel_bins(x, kh, kw, ph, pw, bins, table_bins):
    """Fixed bins, one range per channel: every padded value binned once, then gathered per displacement."""
    c = x.shape[1]
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    disp = displacements(kh, kw)
    lo = per_channel(xp.amin(dim=(0, 2, 3)).double())
    hi = per_channel(xp.amax(dim=(0, 2, 3)).double() + 1e-12)
    nb = torch.full((1, c, 1, 1), float(bins), dtype=torch.float64, device=x.device)
    b, keep = bin_index(xp.double(), lo, hi, nb)
    b = torch.where(keep, b, torch.full_like(b, -1))  # -1: dropped
    hist = torch.zeros(c * len(disp) * table_bins * table_bins, dtype=torch.int64, device=x.device)
    base = torch.arange(c, device=x.device, dtype=torch.int64).view(1, -1, 1, 1) * (len(disp) * table_bins * table_bins)
    for u, (dy, dx) in enumerate(disp):
        bp, bq = pair_views(b, dy, dx)
        if bp is None:
            continue
        flat = base + u * table_bins * table_bins + bp * table_bins + bq
        hist += torch.bincount(flat[(bp >= 0) & (bq >= 0)], minlength=hist.numel())
    return hist.view(c, len(disp), table_bins, table_bins)


def numpy_oracle(x, kh, kw, ph, pw, bins, range_mode, table_bins):
    """Straightforward loops over (channel, displacement) of the header's binning, float64 scalars."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    disp = displacements(kh, kw)
    hist = np.zeros((c, len(disp), table_bins, table_bins), dtype=np.int64)
    for ch in range(c):
        plane = xp[:, ch]
        for u, (dy, dx) in enumerate(disp):
            hp, wp = plane.shape[1], plane.shape[2]
            pairs = [(plane[s, i, j], plane[s, i + dy, j + dx]) for s in range(n) for i in range(hp)
                     for j in range(wp) if 0 <= i + dy < hp and 0 <= j + dx < wp]
            if not pairs:
                continue
            b = bins if bins > 0 else 1 + ceil_log2(len(pairs))
            if range_mode == RANGE_PAIRS:
                lo_p, hi_p = float(min(p for p, _ in pairs)), float(max(p for p, _ in pairs)) + 1e-12
                lo_q, hi_q = float(min(q for _, q in pairs)), float(max(q for _, q in pairs)) + 1e-12
            else:
                lo_p = lo_q = float(plane.min())
                hi_p = hi_q = float(plane.max()) + 1e-12
            for p, q in pairs:
                p, q = float(p), float(q)
                if lo_p <= p < hi_p and lo_q <= q < hi_q:
                    bp = min(int((p - lo_p) * (b / (hi_p - lo_p))), b - 1)
                    bq = min(int((q - lo_q) * (b / (hi_q - lo_q))), b - 1)
                    hist[ch, u, bp, bq] += 1
    return hist


def relu_input(shape, device, generator):
    x = torch.randn(shape, generator=generator, device="cpu").relu().to(device)
    return x


def cross_check(device):
    g = torch.Generator().manual_seed(7)
    for (n, c, h, w, kh, kw, ph, pw) in [(2, 3, 7, 9, 3, 3, 1, 1), (1, 2, 6, 5, 5, 3, 0, 2)]:
        # Quarter steps: many ties and values on bin edges.
        x = (relu_input((n, c, h, w), "cpu", g) * 4).round() / 4
        hp, wp = h + 2 * ph, w + 2 * pw
        tb = 1 + ceil_log2(n * hp * wp)
        got = torch_reference(x.to(device), kh, kw, ph, pw, tb).cpu().numpy()
        want = numpy_oracle(x.numpy(), kh, kw, ph, pw, 0, RANGE_PAIRS, tb)
        if not np.array_equal(got, want):
            sys.exit(f"reference counts differ for {(n, c, h, w, kh, kw, ph, pw)}: {np.abs(got - want).sum()} off")
        for bins in (7, 64):
            got = torch_channel_bins(x.to(device), kh, kw, ph, pw, bins, bins).cpu().numpy()
            want = numpy_oracle(x.numpy(), kh, kw, ph, pw, bins, RANGE_CHANNEL, bins)
            if not np.array_equal(got, want):
                sys.exit(f"{bins}-bin counts differ for {(n, c, h, w, kh, kw, ph, pw)}: {np.abs(got - want).sum()} off")
    print("counts match")


def time_ms(fn, warmup=3, iters=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: spatial_dependence.py OUT_DIR")
    out_dir = sys.argv[1]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cross_check(device)
    if device != "cuda":
        sys.exit("no CUDA device: the cross-check ran on the CPU, timings need a GPU")

    n, c, h, w, kh, kw, ph, pw = 512, 64, 56, 56, 3, 3, 1, 1
    x = relu_input((n, c, h, w), device, torch.Generator().manual_seed(1))
    hp, wp = h + 2 * ph, w + 2 * pw
    pairs = sum(n * c * (hp - abs(dy)) * (wp - abs(dx)) for dy, dx in displacements(kh, kw))
    # The largest Sturges B of any displacement sizes the table.
    sturges = max(1 + ceil_log2(n * (hp - abs(dy)) * (wp - abs(dx))) for dy, dx in displacements(kh, kw))
    cases = [
        ("reference", lambda: torch_reference(x, kh, kw, ph, pw, sturges)),
        ("fixed64-channel", lambda: torch_channel_bins(x, kh, kw, ph, pw, 64, 64)),
        ("fixed256-channel", lambda: torch_channel_bins(x, kh, kw, ph, pw, 256, 256)),
    ]
    results = []
    for name, fn in cases:
        ms = time_ms(fn)
        gps = pairs / (ms * 1e-3) / 1e9
        print(f"{name:18s} N={n} C={c} {h}x{w} k={kh}x{kw} pad={ph}: {ms:8.3f} ms  {gps:7.2f} G pairs/s")
        results.append({"case": name, "batch": n, "channels": c, "height": h, "width": w, "kernel": [kh, kw],
                        "pad": [ph, pw], "pairs": pairs, "ms": ms, "gpairs_per_s": gps})
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "spatial_dependence.json"), "w") as f:
        json.dump({"family": "spatial_dependence", "baseline": "pytorch", "torch": torch.__version__,
                   "device": torch.cuda.get_device_name(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
