#!/usr/bin/env python3
"""Generate tests/fixtures/deeplift_squeezenet.json: captum's DeepLIFT cross-max rule on a tiny SqueezeNet, where a
zero baseline makes max-pool windows tie exactly and PyTorch's float64 rounding breaks those ties (issue #20, item 8).

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch torchvision zennit captum numpy
    ~/venv/bin/python tools/gen_deeplift_squeezenet.py            # writes tests/fixtures/deeplift_squeezenet.json
    ~/venv/bin/python tools/gen_deeplift_squeezenet.py --out DIR  # write somewhere else

(zennit only because the graph export is shared with tools/gen_graph_fixtures.py.) float64, one CPU thread, fixed
seeds: re-running with the same versions gives the same file.

What it shows
-------------
With a zero baseline every activation of the baseline pass is constant across space away from the borders (a
convolution of a constant plane, plus its bias, is constant where its window does not reach the zero padding). So a
max-pool window of the baseline often holds several exactly equal maxima, and cross-max routes the part
(y - max(y, y_ref)) * m of a window whose maximum is below the baseline's to the baseline's argmax. Which of the equal
maxima that is decides where the contribution lands, and everything below the pool depends on it.

In exact arithmetic the tie is exact and PyTorch's max_pool2d takes the first maximum in row-major order, as the
crate does. But PyTorch's float64 CPU convolution rounds different output positions differently, so the "constant"
baseline planes vary by a few units in the last place (up to ~1e-13 relative), and the pool's index lands on whichever
equal maximum happened to round up. The crate computes every interior position the same way (exactly constant
planes), so its ties are exact and it takes the first. On torchvision's squeezenet1_1 (random weights, biases ~
N(0, 0.1^2), 224x224, zero baseline, model exported to ONNX in float64) that put captum (cross-max active after ReLUs,
contributions accumulated) 1.3e-2 (max|d| / max|ref|) away from the crate; with captum's pool index replaced by the
first position within 1e-11 (relative) of the window maximum -- a change that only touches windows whose maxima
differ by rounding -- the two agree to 9e-15 (224x224), 4e-14 (226x226, ceil-mode windows cut short in all three
pools) and 2e-14 (230x230). This script reproduces both on a tiny SqueezeNet and records the evidence.

Network (torchvision's SqueezeNet class and Fire modules, widths shrunk, stem stride 1): features = Conv2d(3, 16, 3) +
ReLU, MaxPool2d(3, 2, ceil_mode=True) (directly after the ReLU, 16 -> 8: the last window is cut short),
Fire(16, 8, 16, 16), Fire(32, 8, 16, 16), MaxPool2d(3, 2, ceil_mode=True) (after the concatenation, 8 -> 4, cut short),
Fire(32, 8, 16, 16); classifier = Dropout, Conv2d(32, 10, 1), ReLU, AdaptiveAvgPool2d((1, 1)); flatten. Input
3x18x18, one sample (target: its predicted class), eval mode, float64. Conv weights ~ N(0, 2/fan_in), biases ~
N(0, 0.3^2), all rounded to 4 significant digits (non-zero biases: with torchvision's zero biases the baseline pass is
all zeros and exact in any arithmetic). Narrower Fire modules (8 expand channels) showed few rounding ties and none
that routed a contribution.

Two variants of the same network:
* "rounded": the parameters as drawn. PyTorch's baseline planes carry rounding noise; asserted: some windows of the
  baseline have PyTorch's index on a later one of several maxima equal up to rounding, some of them route a
  contribution there (the window's maximum on x is below the baseline's), and captum's attribution moves by > 1e-3.
* "exact": every parameter rounded to a multiple of 2^-5, so that every sum of the baseline pass is exact in float64
  whatever the summation order: the ties are exact in PyTorch too (asserted: no rounding ties, both runs identical),
  and captum needs no help to agree with the crate.

Both variants are checked in exact arithmetic: the zero input's pass up to the last pool is evaluated with Fractions
(every float parameter is a binary fraction); asserted: in every baseline pool window the first exact maximum is the
tie-first index below, and every window where PyTorch's index differs from it is an exact tie.

captum setup (captum 0.9.0, DeepLift(eps=1e-10), zero baseline):
* cross-max after a ReLU: a copying module before every max-pool (captum drops the pool's multiplier when a ReLU
  module feeds the pool directly, issue #1104; see tools/gen_deeplift_fixtures.py);
* contributions accumulated: captum's max_unpool2d assigns, so overlapping windows (3x3, stride 2) lose contributions;
  the pool rule here unpools with scatter_add;
* "captum_plain": the pool index from F.max_pool2d(return_indices=True), as captum;
* "captum_tie_first": the pool index replaced by the first position (row-major) whose value is within TIE_RTOL = 1e-11
  (relative) of the window maximum. Asserted at every pool of every run: no window value lies in (TIE_RTOL, 1e-8)
  below its window's maximum (near-maxima are rounding copies of one exact value or clearly apart), and in the input
  half the two indices never differ; so this changes nothing but the tie-break of rounding-level ties.
Both runs must conserve (|captum delta| < 1e-12). Copying modules around every pool record the contributions
m * (a - a_ref) at its input and output.

Format (JSON; a tensor is {"shape", "data"} with floats as Python repr): generator, versions, name, tie_rtol, eps,
input_shape, input [1,3,18,18], target [1], variants: [{name ("rounded" | "exact"), nodes and output (as in
tests/fixtures/graph_*.json), logits, baseline_logits, total [1] = f_c(x) - f_c(0),
captum_plain / captum_tie_first: {attribution [1,3,18,18], delta [1] (= total - sum attribution; captum's convergence
delta has the opposite sign), pool (rounded only): {name (RECORDED_POOL, the pool where the ties are), input_value:
contributions at the pool's input [1,C,H,W], output_value: at its output}},
rounding_ties: [[pool, sample, c, oy, ox, torch_index, first_index, routed]] (baseline half of captum's pass; flat
indices in the H x W plane of the pool's input; routed: the window's maximum on x is below the baseline's),
deviation_plain_vs_tie_first}].
"""
import argparse
import copy
import json
import os
import sys
import warnings
from fractions import Fraction

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_graph_fixtures import _t, check, export_graph, graph_forward, tensor_json  # noqa: E402

import captum  # noqa: E402
import captum.attr._core.deep_lift as captum_dl  # noqa: E402
import torchvision  # noqa: E402
from captum.attr import DeepLift  # noqa: E402
from torchvision.models.squeezenet import Fire, SqueezeNet  # noqa: E402

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
warnings.filterwarnings("ignore")

GENERATOR = "tools/gen_deeplift_squeezenet.py"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
SEED = 22
BATCH = 1
RECORDED_POOL = "features.5"  # where the rounding ties are: contributions at its input and output are written
INPUT = (3, 18, 18)
BIAS_STD = 0.3
DL_EPS = 1e-10
TIE_RTOL = 1e-11   # rounding ties: observed spreads ~1e-13; real gaps must exceed NEAR_GAP
NEAR_GAP = 1e-8
EXACT_STEP = 2.0 ** -5


def short(t):
    """Round to 4 significant digits (short JSON); exact in the file, so both sides read the same numbers."""
    return torch.tensor([float(f"{v:.4g}") for v in t.reshape(-1).tolist()]).reshape(t.shape)


def build(variant):
    torch.manual_seed(SEED)
    model = SqueezeNet("1_1", num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(16, 8, 16, 16),
        Fire(32, 8, 16, 16),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(32, 8, 16, 16),
    )
    model.classifier = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(32, 10, kernel_size=1), nn.ReLU(inplace=True),
                                     nn.AdaptiveAvgPool2d((1, 1)))
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(short(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5))
                m.bias.copy_(short(torch.randn(m.bias.shape, generator=gen) * BIAS_STD))
                if variant == "exact":
                    m.weight.copy_(torch.round(m.weight / EXACT_STEP) * EXACT_STEP)
                    m.bias.copy_(torch.round(m.bias / EXACT_STEP) * EXACT_STEP)
    model = model.double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def pool_windows(pool, a):
    """Every window of MaxPool2d `pool` on a [N, C, H, W] (ceil-mode windows cut short: -inf outside): values and
    flat plane indices, [N, C, Ho, Wo, k*k] each."""
    kh, kw = (pool.kernel_size,) * 2 if isinstance(pool.kernel_size, int) else pool.kernel_size
    sh, sw = (pool.stride,) * 2 if isinstance(pool.stride, int) else pool.stride
    ph, pw = (pool.padding,) * 2 if isinstance(pool.padding, int) else pool.padding
    n, c, h, w = a.shape
    out = F.max_pool2d(a, pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
    ho, wo = out.shape[2:]
    pad = (pw, (wo - 1) * sw + kw - w - pw, ph, (ho - 1) * sh + kh - h - ph)
    pos = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w).expand(n, c, h, w)
    wa = F.pad(a, pad, value=-float("inf")).unfold(2, kh, sh).unfold(3, kw, sw).reshape(n, c, ho, wo, kh * kw)
    wp = F.pad(pos, pad, value=-1.0).unfold(2, kh, sh).unfold(3, kw, sw).reshape(n, c, ho, wo, kh * kw)
    return wa, wp.long()


def tie_first_index(pool, a):
    """The first position (row-major) of each window whose value is within TIE_RTOL of the window maximum."""
    wa, wp = pool_windows(pool, a)
    top = wa.max(-1, keepdim=True).values
    near = wa >= top - TIE_RTOL * top.abs()
    return wp.gather(-1, near.to(torch.int8).argmax(-1, keepdim=True)).squeeze(-1)


def near_tie_gaps(pool, a):
    """Relative gaps |v - max| / |max| in (TIE_RTOL, NEAR_GAP) of any window: values that are neither rounding copies
    of the maximum nor clearly apart from it."""
    wa, _ = pool_windows(pool, a)
    top = wa.max(-1, keepdim=True).values
    gap = (top - wa) / top.abs().clamp_min(1e-300)
    bad = (gap > TIE_RTOL) & (gap < NEAR_GAP)
    return int(bad.sum())


def scatter_unpool(values, indices, kernel_size, stride, padding, output_size):
    """max_unpool2d that ADDS where windows overlap (captum's assigns)."""
    n, c = values.shape[:2]
    out = torch.zeros(n, c, output_size[-2] * output_size[-1], dtype=values.dtype)
    out.scatter_add_(2, indices.reshape(n, c, -1), values.reshape(n, c, -1))
    return out.reshape(n, c, output_size[-2], output_size[-1])


class _TapFn(torch.autograd.Function):
    """A copy whose backward records the gradient arriving at its output: the multiplier of the tensor."""

    @staticmethod
    def forward(ctx, x, tap):
        ctx.tap = tap
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        ctx.tap.grad = g.detach().clone()
        return g, None


class Tap(nn.Module):
    """A copying identity (makes captum apply cross-max after a ReLU) that records its value and multiplier."""

    def __init__(self):
        super().__init__()
        self.value = self.grad = None

    def forward(self, x):
        if x.shape[0] == 2:  # captum's paired pass (input; baseline)
            self.value = x.detach().clone()
        return _TapFn.apply(x, self)


def captum_model(model):
    """A copy with a Tap before and after every max-pool; returns it and {pool name: (tap in, tap out)}."""
    mc = copy.deepcopy(model)
    taps = {}
    for name, mod in list(mc.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.MaxPool2d):
                full = f"{name}.{child_name}" if name else child_name
                tin, tout = Tap(), Tap()
                setattr(mod, child_name, nn.Sequential(tin, child, tout))
                taps[full] = (tin, tout)
    return mc.eval(), taps


def run_captum(model, x, target, tie_first):
    """captum's DeepLift with cross-max active at every pool and accumulated contributions, one sample per call.
    Returns the attributions, deltas, {pool: (contributions at its input, at its output)} and the rounding ties:
    [pool name, sample, c, oy, ox, torch index, first index, routed] for every window of the baseline half whose
    PyTorch index is not the first of its rounding-level maxima (routed: the window's maximum on x is below the
    baseline's, so cross-max sends a contribution to that index)."""
    names, ties, sample, tied_routed = {}, [], [0], [0]

    def pool_fn(inp, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
        vals, idx = F.max_pool2d(inp, kernel_size, stride, padding, dilation, ceil_mode, True)
        pool = nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)
        bad = near_tie_gaps(pool, inp)
        check(bad == 0, f"{bad} pool window values within ({TIE_RTOL}, {NEAR_GAP}) of their window's maximum")
        first = tie_first_index(pool, inp)
        check(bool((idx[0] == first[0]).all()), "a rounding-level tie in the input half of a pool")
        wa, _ = pool_windows(pool, inp[1:])
        top = wa.max(-1, keepdim=True).values
        tied = (wa >= top - TIE_RTOL * top.abs()).sum(-1)[0] > 1
        tied_routed[0] += int((tied & (vals[0] < vals[1])).sum())
        for c, i, j in (idx[1] != first[1]).nonzero().tolist():
            ties.append([names[pool_fn.module], sample[0], c, i, j, int(idx[1, c, i, j]), int(first[1, c, i, j]),
                         bool(vals[0, c, i, j] < vals[1, c, i, j])])
        return vals, (first if tie_first else idx)

    def maxpool2d(module, inputs, outputs, grad_input, grad_output, eps=DL_EPS):
        pool_fn.module = module
        return captum_dl.maxpool(module, pool_fn, scatter_unpool, inputs, outputs, grad_input, grad_output, eps=eps)

    saved = captum_dl.SUPPORTED_NON_LINEAR[nn.MaxPool2d]
    captum_dl.SUPPORTED_NON_LINEAR[nn.MaxPool2d] = maxpool2d
    try:
        mc, taps = captum_model(model)
        names.update({m: name[:-2] for name, m in mc.named_modules()
                      if isinstance(m, nn.MaxPool2d) and name.endswith(".1")})  # inside the tap Sequential
        attrs, deltas, pools = [], [], {name: ([], []) for name in taps}
        for i in range(x.shape[0]):
            sample[0] = i
            xi = x[i:i + 1].clone().requires_grad_(True)
            attr, delta = DeepLift(mc, multiply_by_inputs=True, eps=DL_EPS).attribute(
                xi, baselines=torch.zeros_like(xi), target=int(target[i]), return_convergence_delta=True)
            attrs.append(attr.detach())
            deltas.append(-delta.detach().reshape(()))  # captum's delta is sum(attr) - total; ours the opposite
            for name, (tin, tout) in taps.items():
                for tap, acc in zip((tin, tout), pools[name]):
                    acc.append(tap.grad[:1] * (tap.value[:1] - tap.value[1:]))
    finally:
        captum_dl.SUPPORTED_NON_LINEAR[nn.MaxPool2d] = saved
    contribs = {k: (torch.cat(a), torch.cat(b)) for k, (a, b) in pools.items()}
    return torch.cat(attrs), torch.stack(deltas), contribs, ties, tied_routed[0]


def exact_baseline(nodes, shape, until):
    """The zero input's pass through the JSON graph in exact rational arithmetic (every parameter is a binary fraction,
    read exactly), up to and including node `until`: {node name: object array [C, H, W] of Fractions}. Knows the ops
    of this network (conv2d with stride 1 and zero padding, relu, maxpool2d, concat)."""
    zero = Fraction(0)
    vals = {"input": np.full(shape, zero, dtype=object)}
    for nd in nodes:
        a = vals[nd["inputs"][0]]
        op = nd["op"]
        if op == "conv2d":
            w = _t(nd["weight"]).numpy()
            o, c, kh, kw = w.shape
            check(nd["stride"] == [1, 1] and nd["dilation"] == [1, 1] and nd["groups"] == 1, "exact conv: options")
            ph, pw = nd["padding"]
            ap = np.full((c, a.shape[1] + 2 * ph, a.shape[2] + 2 * pw), zero, dtype=object)
            ap[:, ph:ph + a.shape[1], pw:pw + a.shape[2]] = a
            ho, wo = ap.shape[1] - kh + 1, ap.shape[2] - kw + 1
            cols = np.stack([ap[:, i:i + ho, j:j + wo] for i in range(kh) for j in range(kw)], 1)
            cols = cols.reshape(c * kh * kw, -1)
            wf = np.vectorize(Fraction, otypes=[object])(w.reshape(o, -1))
            bias = np.vectorize(Fraction, otypes=[object])(_t(nd["bias"]).numpy())
            y = (wf.dot(cols) + bias[:, None]).reshape(o, ho, wo)
        elif op == "relu":
            y = np.vectorize(lambda v: max(v, zero), otypes=[object])(a)
        elif op == "maxpool2d":
            (kh, kw), (sh, sw), ceil = nd["kernel"], nd["stride"], nd["ceil_mode"]
            check(nd["padding"] == [0, 0], "exact pool: padding")
            size = [((n - k + (s - 1 if ceil else 0)) // s) + 1 for n, k, s in zip(a.shape[1:], (kh, kw), (sh, sw))]
            size = [o - 1 if ceil and (o - 1) * s >= n else o for o, n, s in zip(size, a.shape[1:], (sh, sw))]
            y = np.empty((a.shape[0], size[0], size[1]), dtype=object)
            for i in range(size[0]):
                for j in range(size[1]):
                    y[:, i, j] = a[:, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(a.shape[0], -1).max(1)
        elif op == "concat":
            y = np.concatenate([vals[i] for i in nd["inputs"]], nd["axis"])
        else:
            raise ValueError(f"exact baseline: op {op}")
        vals[nd["name"]] = y
        if nd["name"] == until:
            return vals
    raise ValueError(f"node {until} not found")


def check_ties_exact(nodes, ties):
    """Every pool window of the baseline pass (zero input), evaluated in exact arithmetic: the first maximum
    (row-major) is the tie-first index captum_tie_first used, and every recorded rounding tie is an exact tie
    (PyTorch's index holds the same exact value as the first maximum)."""
    pools = [nd for nd in nodes if nd["op"] == "maxpool2d"]
    exact = exact_baseline(nodes, INPUT, pools[-1]["inputs"][0])
    pool_inputs = {}
    checked = 0
    for nd in pools:
        a = exact[nd["inputs"][0]]
        c, h, w = a.shape
        pool = nn.MaxPool2d(nd["kernel"], nd["stride"], nd["padding"], ceil_mode=nd["ceil_mode"])
        af = torch.tensor(np.vectorize(float)(a).astype(np.float64))[None]
        first = tie_first_index(pool, af)[0]  # on the exact values rounded once
        (kh, kw), (sh, sw) = nd["kernel"], nd["stride"]
        for ch in range(c):
            for i in range(first.shape[1]):
                for j in range(first.shape[2]):
                    win = [(y * w + x, a[ch, y, x]) for y in range(i * sh, min(i * sh + kh, h))
                           for x in range(j * sw, min(j * sw + kw, w))]
                    top = max(v for _, v in win)
                    exact_first = next(p for p, v in win if v == top)
                    check(int(first[ch, i, j]) == exact_first,
                          f"{nd['name']}: the tie-first index is not the exact first maximum")
                    checked += 1
        pool_inputs[nd["name"]] = a
    for name, _, ch, i, j, torch_index, first_index, _ in ties:
        a = pool_inputs[name].reshape(pool_inputs[name].shape[0], -1)
        check(a[ch, torch_index] == a[ch, first_index], f"{name}: recorded tie is not exact")
    return checked


def rel(a, b):
    return float((a - b).abs().max()) / float(b.abs().max())


def generate_variant(variant, x, target):
    model = build(variant)
    nodes, output, _ = export_graph(model)
    with torch.no_grad():
        logits = model(x)
        base_logits = model(torch.zeros((1,) + INPUT))
    check(torch.equal(graph_forward(nodes, x)[output], logits), "the JSON graph does not reproduce the logits")
    idx = torch.arange(BATCH)
    total = logits[idx, target] - base_logits[0, target]
    out = {"name": variant, "nodes": nodes, "output": output, "logits": tensor_json(logits),
           "baseline_logits": tensor_json(base_logits), "total": tensor_json(total)}
    results = {}
    for key, tie_first in (("captum_plain", False), ("captum_tie_first", True)):
        attr, delta, contribs, ties, tied_routed = run_captum(model, x, target, tie_first)
        check(torch.isfinite(attr).all() and float(attr.abs().max()) > 1e-6, f"{variant}/{key}: attribution")
        own = total - attr.flatten(1).sum(1)
        check(float((own - delta).abs().max()) < 1e-12, f"{variant}/{key}: delta bookkeeping")
        check(float(delta.abs().max()) < 1e-12, f"{variant}/{key}: cross-max did not conserve ({delta})")
        results[key] = attr
        ci, co = contribs[RECORDED_POOL]
        out[key] = {"attribution": tensor_json(attr), "delta": tensor_json(delta)}
        if variant == "rounded":
            out[key]["pool"] = {"name": RECORDED_POOL, "input_value": tensor_json(ci), "output_value": tensor_json(co)}
        if not tie_first:
            out["rounding_ties"] = ties
            print(f"  [{variant}] {tied_routed} baseline pool windows hold several maxima (equal up to rounding) and "
                  "route a contribution to one of them")
            check(tied_routed > 0, "no tie decides anything")
    ties = out["rounding_ties"]
    checked = check_ties_exact(nodes, ties)
    print(f"  [{variant}] exact arithmetic: the tie-first index is the exact first maximum in all {checked} baseline "
          f"pool windows; all {len(ties)} rounding ties are exact ties")
    routed = sum(t[-1] for t in ties)
    print(f"  [{variant}] {len(ties)} baseline pool windows (over {BATCH} samples) have PyTorch's index on a later "
          f"rounding-level maximum, {routed} of them routing a contribution there")
    dev = rel(results["captum_plain"], results["captum_tie_first"])
    out["deviation_plain_vs_tie_first"] = dev
    print(f"  [{variant}] captum plain vs tie-first: max|d|/max|ref| = {dev:.2e}")
    if variant == "exact":
        check(not ties and dev == 0.0, "exact parameters: the baseline pass should have no rounding ties")
    else:
        check(routed > 0 and dev > 1e-3, "the rounding ties should move captum's attribution")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures)")
    args = ap.parse_args()
    print(f"captum {captum.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    gen = torch.Generator().manual_seed(SEED + 1)
    x = short(torch.randn((BATCH,) + INPUT, generator=gen))
    with torch.no_grad():
        target = build("rounded")(x).argmax(1)
    fixture = {
        "generator": GENERATOR, "captum_version": captum.__version__, "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__, "name": "squeezenet", "tie_rtol": TIE_RTOL, "eps": DL_EPS,
        "input_shape": list(INPUT), "input": tensor_json(x), "target": [int(t) for t in target],
        "variants": [generate_variant(v, x, target) for v in ("rounded", "exact")],
    }
    text = json.dumps(fixture, separators=(",", ":"), allow_nan=False)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "deeplift_squeezenet.json")
    with open(path, "w") as f:
        f.write(text + "\n")
    print(f"wrote {os.path.normpath(path)} ({len(text) / 1e3:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
