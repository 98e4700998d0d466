"""PyTorch baseline for the scaled SGD step: SPEC.md section 2.

What a user would otherwise run on the GPU, timed with CUDA events after warm-up:
  sgd_fused        torch.optim.SGD(fused=True) alone (no spatial scaling: the lower bound of today's path)
  sgs_then_fused   the user-level SGS of today: grad.mul_(G) for every conv with a 3x3 / 7x7 kernel (one
                   launch per tensor), then torch.optim.SGD(fused=True)
  copy             a device-to-device copy of 10 bytes per parameter: 20 bytes of traffic per parameter,
                   the same as one step with momentum (reads w, g, buf; writes w, buf): the floor
on two parameter sets:
  resnet50         torchvision.models.resnet50().parameters() when torchvision is present, else the same
                   161 shapes (25.6 M parameters) listed below; the 7x7 stem and the 3x3 convs carry a G
  flat256M         one tensor of 256 M parameters (sgd_fused and copy: there is no conv to scale)
Momentum 0.9, weight decay 1e-4 (not on BN weights and biases, as trainers set it), nesterov off, lr 0.01.
The GB/s figure is 20 bytes per parameter divided by the time, for every case; compare gradshape's
ScaledSgdBench (step:gigabytes) with these.

Before timing, sgs_then_fused runs three steps on a small model and is compared with a float64
implementation of SPEC.md section 2 ("matches SPEC", or exit 1), so the baseline computes what
gradshape computes.

Usage: python bench/pytorch/scaled_sgd.py OUT_DIR   (writes OUT_DIR/scaled_sgd.json)
"""
import json
import os
import sys

import torch

MOMENTUM, WEIGHT_DECAY, LR = 0.9, 1e-4, 0.01
FLAT = 256 << 20
BYTES_PER_PARAM = 20


def resnet50_shapes():
    """(shape, weight decay) of torchvision's resnet50 parameters, in parameters() order."""
    out = []

    def conv(cout, cin, k):
        out.append(((cout, cin, k, k), True))

    def bn(c):
        out.extend([((c,), False), ((c,), False)])

    conv(64, 3, 7)
    bn(64)
    inplanes = 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for b in range(blocks):
            conv(planes, inplanes, 1); bn(planes)
            conv(planes, planes, 3); bn(planes)
            conv(4 * planes, planes, 1); bn(4 * planes)
            if b == 0:
                conv(4 * planes, inplanes, 1); bn(4 * planes)
            inplanes = 4 * planes
    out.append(((1000, 2048), True))
    out.append(((1000,), False))
    return out


def resnet50_parameters(device):
    """Parameter tensors with gradients, and the source of the list."""
    try:
        import torchvision
        model = torchvision.models.resnet50()
        params = [p.detach().to(device).requires_grad_() for p in model.parameters()]
        source = "torchvision.models.resnet50()"
    except ImportError:
        params = [torch.randn(s, device=device).requires_grad_() for s, _ in resnet50_shapes()]
        source = "built-in shape list (torchvision not installed)"
    assert len(params) == 161 and sum(p.numel() for p in params) == 25_557_032, "unexpected ResNet-50 parameter set"
    return params, source


def with_gradients(params, generator):
    for p in params:
        p.grad = torch.randn(p.shape, device=p.device, generator=generator)
    return params


def scales_for(params, generator):
    """G (mean 1, positive) for every conv weight whose kernel sides are odd and > 1."""
    out = []
    for p in params:
        if p.dim() == 4 and p.shape[2] > 1 and p.shape[3] > 1 and p.shape[2] % 2 == 1 and p.shape[3] % 2 == 1:
            g = 0.5 + torch.rand(p.shape[2], p.shape[3], device=p.device, generator=generator)
            out.append((p, g / g.mean()))
    return out


def make_sgd(params, decay_all=False):
    """Weight decay on conv / fc weights only (dim > 1), as in the gradshape benchmark; decay_all: on every
    tensor (the flat case, one tensor holding everything)."""
    decay = [p for p in params if decay_all or p.dim() > 1]
    no_decay = [p for p in params if not (decay_all or p.dim() > 1)]
    groups = [{"params": ps, "weight_decay": wd} for ps, wd in ((decay, WEIGHT_DECAY), (no_decay, 0.0)) if ps]
    return torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, nesterov=False, fused=True)


def sgs_step(scaled, sgd):
    for p, g in scaled:
        p.grad.mul_(g)
    sgd.step()


def check_against_spec(device):
    """Three steps of sgs_then_fused on a small model vs float64 SPEC.md section 2 (first step buf = d)."""
    gen = torch.Generator(device=device).manual_seed(1)
    shapes = [((8, 4, 3, 3), True), ((8,), False), ((6, 8, 7, 7), True), ((6, 8, 1, 1), True), ((10, 6), True)]
    params = [torch.randn(s, device=device, generator=gen).requires_grad_() for s, _ in shapes]
    scaled = scales_for(params, gen)
    scale_of = {id(p): g for p, g in scaled}
    ref_w = [p.detach().double().clone() for p in params]
    ref_buf = [None] * len(params)
    sgd = make_sgd(params)
    for _ in range(3):
        with_gradients(params, gen)
        grads = [p.grad.double().clone() for p in params]
        sgs_step(scaled, sgd)
        for i, p in enumerate(params):
            d = grads[i]
            if id(p) in scale_of:
                d = d * scale_of[id(p)].double()                  # broadcast over Cout, Cin
            if p.dim() > 1:
                d = d + WEIGHT_DECAY * ref_w[i]                   # decay after scaling
            ref_buf[i] = d.clone() if ref_buf[i] is None else MOMENTUM * ref_buf[i] + d
            ref_w[i] = ref_w[i] - LR * ref_buf[i]
    worst = max(((p.detach().double() - r).abs() / (1e-6 + r.abs())).max().item() for p, r in zip(params, ref_w))
    if worst > 1e-5:
        print(f"sgs_then_fused does NOT match SPEC: worst relative error {worst:.3g}")
        sys.exit(1)
    print(f"sgs_then_fused matches SPEC (3 steps, worst relative error {worst:.2g})")


def time_ms(fn, warmup=10, iters=50, repeats=5):
    """Median over repeats of the mean time per call of `iters` back-to-back calls, in ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / iters)
    times.sort()
    return times[len(times) // 2]


def run_case(results, set_name, params, scaled, decay_all=False):
    n = sum(p.numel() for p in params)
    traffic = BYTES_PER_PARAM * n
    sgd = make_sgd(params, decay_all)
    sgd.step()  # creates the momentum buffers: time the steady state
    src = torch.empty(traffic // 2, dtype=torch.uint8, device=params[0].device)
    dst = torch.empty_like(src)
    cases = {"sgd_fused": lambda: sgd.step()}
    if scaled:
        cases["sgs_then_fused"] = lambda: sgs_step(scaled, sgd)
    cases["copy"] = lambda: dst.copy_(src)
    for name, fn in cases.items():
        ms = time_ms(fn)
        gbps = traffic / (ms * 1e-3) / 1e9
        row = {"set": set_name, "case": name, "tensors": len(params), "scaled_tensors": len(scaled), "parameters": n,
               "ms": ms, "traffic_gb_per_s": gbps}
        results.append(row)
        print(f"{set_name:10s} {name:15s} {len(params):4d} tensors {n / 1e6:7.1f} M params  {ms:8.4f} ms  {gbps:7.1f} GB/s")
    del src, dst, sgd


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    if not torch.cuda.is_available():
        print("scaled_sgd.py: CUDA not available")
        sys.exit(1)
    device = torch.device("cuda")
    check_against_spec(device)
    gen = torch.Generator(device=device).manual_seed(0)
    results = []

    params, source = resnet50_parameters(device)
    with_gradients(params, gen)
    run_case(results, "resnet50", params, scales_for(params, gen))
    del params

    flat = [torch.randn(FLAT, device=device, generator=gen).requires_grad_()]
    with_gradients(flat, gen)
    run_case(results, "flat256M", flat, [], decay_all=True)
    del flat

    summary = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "resnet50_source": source,
        "hyperparameters": {"lr": LR, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY, "nesterov": False},
        "bytes_per_parameter": BYTES_PER_PARAM,
        "results": results,
    }
    path = os.path.join(out_dir, "scaled_sgd.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
