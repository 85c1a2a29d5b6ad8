#!/usr/bin/env python3
"""Generate the DeepLIFT reference fixtures (tests/fixtures/deeplift_*.json) from the REAL captum library.

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch captum numpy
    ~/venv/bin/python tools/gen_deeplift_fixtures.py            # writes tests/fixtures/deeplift_{mlp,cnn,deep}.json
    ~/venv/bin/python tools/gen_deeplift_fixtures.py --out DIR  # write somewhere else

The networks, inputs and targets are those of the LRP fixtures (tests/fixtures/lrp_{mlp,cnn,deep}.json, written by
tools/gen_lrp_fixtures.py), which must exist; they are copied into each DeepLIFT fixture so that the Rust test reads one
file. Everything runs in float64 on one CPU thread with fixed seeds, so re-running gives identical files for the same
captum/torch versions (written into every file).

What it does
------------
1. Rebuilds each network as a torch.nn.Sequential (a fresh module per layer: captum refuses reused modules).
2. Draws baselines (fixed seeds): zero; one shared baseline [1, ...]; one per sample [N, ...]; K = 3 baselines for
   DeepLiftShap. A draw is rejected (and redrawn) if a quantity whose rounding could flip a branch is too close to
   it: a ReLU pre-activation within 1e-9 of 0, a nonzero |x - x_ref| below 1e-8 at a ReLU or max-pool input (captum
   and we switch to the gradient below 1e-10), or two entries of a max-pool window (with positive max) within 1e-9 (exact ties are fine:
   they are computed exactly and broken alike, first maximum).
3. Runs captum's DeepLift / DeepLiftShap (eps = 1e-10, multiply_by_inputs=True, return_convergence_delta=True) in
   two max-pool modes:
   - "gradient": the model as is. captum 0.9.0 discards the max-pool multiplier when a ReLU module directly
     precedes the pool (captum issue #1104), so it computes Rescale at the ReLU and plain gradient routing at the
     pool. The Rust side: DeepLift::rescale().with_max_pool(MaxPoolRule::Gradient).
   - "cross_max": a copying identity module (x.clone(); nn.Identity returns the same tensor and does NOT help)
     inserted before every max-pool, which makes captum apply its cross-max rule. Only
     for networks whose pools do not overlap (captum's max_unpool overwrites where windows overlap; we add).
     The Rust side: DeepLift::rescale().
   The mlp has no pool; its cases are "cross_max" (either mode is the same).
4. Sanity checks: cross-max cases conserve (|captum delta| < 1e-10); gradient cases on the CNNs with a non-zero
   baseline do not (the #1104 behaviour is really what was recorded); attributions are finite and not all zero.

Fixture format (JSON, tensors as {"shape": [...], "data": [flat C-order]}):
  name, input_shape, layers (as in the LRP fixtures), input, target, cases: [{name, captum ("DeepLift" or
  "DeepLiftShap"), baseline_kind ("zero" | "shared" | "per_sample" | "distribution"), baselines (the tensor given to
  captum; for "zero" a [1, ...] zero tensor), max_pool ("gradient" | "cross_max"), attribution [N, ...], total
  [N] = f_c(x) - mean_k f_c(x_ref_k), delta [N] = total - sum(attribution) = minus captum's convergence delta
  (captum returns sum(attribution) - total; mean over the K pairs for DeepLiftShap)}].
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import captum
from captum.attr import DeepLift, DeepLiftShap

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
warnings.filterwarnings("ignore")

GENERATOR = "tools/gen_deeplift_fixtures.py"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures")
NETWORKS = {"mlp": 100, "cnn": 200, "deep": 300}  # name -> baseline seed
K_SHAP = 3
BASELINE_STD = 0.7


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def tensor_json(t):
    a = np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)
    check(np.all(np.isfinite(a)), "refusing to write a non-finite tensor")
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def _t(tj):
    return torch.tensor(tj["data"], dtype=torch.float64).reshape(tj["shape"])


class Copy(torch.nn.Module):
    """An identity that returns a NEW tensor. captum hooks a module through tensor hooks on its input and output
    tensors; when a ReLU's output tensor is also the pool's input tensor, the ReLU records its output gradient before
    the pool's hook replaces it (hook order), so the pool's multiplier is lost (captum issue #1104). torch.nn.Identity
    returns the very same tensor and does not help; a copy does."""

    def forward(self, x):
        return x.clone()


def build(layers, identity_before_pool):
    mods = []
    for layer in layers:
        t = layer["type"]
        if t == "dense":
            w = _t(layer["weight"])
            m = torch.nn.Linear(w.shape[1], w.shape[0])
        elif t == "conv2d":
            w = _t(layer["weight"])
            m = torch.nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(layer["stride"]),
                                padding=tuple(layer["padding"]), dilation=tuple(layer["dilation"]))
        elif t == "relu":
            mods.append(torch.nn.ReLU())
            continue
        elif t == "maxpool2d":
            if identity_before_pool:
                mods.append(Copy())
            mods.append(torch.nn.MaxPool2d(tuple(layer["kernel"]), tuple(layer["stride"]), tuple(layer["padding"])))
            continue
        elif t == "flatten":
            mods.append(torch.nn.Flatten())
            continue
        else:
            raise ValueError(t)
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(_t(layer["bias"]))
        mods.append(m)
    model = torch.nn.Sequential(*mods).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def activations(model, x):
    acts, h = [x], x
    with torch.no_grad():
        for m in model:
            h = m(h)
            acts.append(h)
    return acts


def pools_overlap(layers):
    return any(l["type"] == "maxpool2d" and (l["stride"][0] < l["kernel"][0] or l["stride"][1] < l["kernel"][1])
               for l in layers)


def gate(model, x, ref):
    """None if the pair (x, ref) is safe from branch flips by rounding, else the reason."""
    ax, ar = activations(model, x), activations(model, ref)
    for k, m in enumerate(model):
        if isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d)):
            d = (ax[k] - ar[k]).abs()
            small = d[(d > 0) & (d < 1e-8)]
            if small.numel():
                return f"module {k}: |dx| = {float(small.min()):.1e}"
        if isinstance(m, torch.nn.ReLU):
            for a in (ax[k], ar[k]):
                if float(a.abs().min()) < 1e-9:
                    return f"module {k}: ReLU pre-activation near 0"
        if isinstance(m, torch.nn.MaxPool2d):
            for a in (ax[k], ar[k]):
                p = m.padding if isinstance(m.padding, tuple) else (m.padding, m.padding)
                ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
                st = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2
                ap = F.pad(a, (p[1], p[1], p[0], p[0]), value=-float("inf"))
                win = ap.unfold(2, ks[0], st[0]).unfold(3, ks[1], st[1]).reshape(*a.shape[:2], -1, ks[0] * ks[1])
                top2 = torch.topk(win, 2, dim=-1).values
                gap = (top2[..., 0] - top2[..., 1])[top2[..., 0] > 0]
                # exact ties (a constant baseline) are computed exactly and broken alike (first maximum)
                if ((gap > 0) & (gap < 1e-9)).any():
                    return f"module {k}: near-tie in a max-pool window"
    return None


def draw_baselines(model, x, shape, count, gen):
    """count baselines [count, ...]; every one must pass the gate against every sample of x."""
    for attempt in range(1000):
        b = torch.randn((count,) + tuple(shape), generator=gen) * BASELINE_STD
        bad = [gate(model, x[i:i + 1], b[j:j + 1]) for i in range(x.shape[0]) for j in range(count)]
        bad = [r for r in bad if r]
        if not bad:
            return b
        print(f"    redraw baselines ({bad[0]})")
    raise RuntimeError("no acceptable baseline draw")


def run_captum(model, x, target, baselines, shap):
    x = x.clone().requires_grad_(True)
    if shap:
        attr, delta = DeepLiftShap(model).attribute(x, baselines=baselines, target=target,
                                                     return_convergence_delta=True)
        delta = delta.reshape(x.shape[0], -1).mean(1)
    else:
        attr, delta = DeepLift(model, eps=1e-10).attribute(x, baselines=baselines, target=target,
                                                             return_convergence_delta=True)
    return attr.detach(), delta.detach()


def generate(name, seed, src_dir):
    src = os.path.join(src_dir, f"lrp_{name}.json")
    check(os.path.exists(src), f"{src} is missing: run tools/gen_lrp_fixtures.py first")
    with open(src) as f:
        lrp = json.load(f)
    layers, x, target = lrp["layers"], _t(lrp["input"]), list(lrp["target"])
    n = x.shape[0]
    plain = build(layers, identity_before_pool=False)
    gen = torch.Generator().manual_seed(seed)
    shape = x.shape[1:]
    zero = torch.zeros((1,) + tuple(shape))
    for i in range(n):
        reason = gate(plain, x[i:i + 1], zero)
        check(reason is None, f"{name}: zero baseline fails the gate for sample {i}: {reason}")
    baselines = {
        "zero": zero,
        "shared": draw_baselines(plain, x, shape, 1, gen),
        "per_sample": None,
        "distribution": draw_baselines(plain, x, shape, K_SHAP, gen),
    }
    while True:
        per = torch.randn((n,) + tuple(shape), generator=gen) * BASELINE_STD
        if all(gate(plain, x[i:i + 1], per[i:i + 1]) is None for i in range(n)):
            baselines["per_sample"] = per
            break

    has_pool = any(l["type"] == "maxpool2d" for l in layers)
    modes = ["cross_max"] if not has_pool else (["gradient"] + ([] if pools_overlap(layers) else ["cross_max"]))
    out = activations(plain, x)[-1]
    cases = []
    for mode in modes:
        model = build(layers, identity_before_pool=(mode == "cross_max" and has_pool))
        check(torch.equal(activations(model, x)[-1], out), "identity changed the output")
        for kind, b in baselines.items():
            shap = kind == "distribution"
            # captum's DeepLift concatenates inputs and baselines along the batch, so a [1, ...] baseline must
            # be repeated to [N, ...] (the Rust side takes the [1, ...] tensor as Baseline::Shared)
            given = b.repeat((n,) + (1,) * len(shape)) if kind == "shared" else b
            attr, captum_delta = run_captum(model, x, target, given, shap)
            delta = -captum_delta  # captum's convergence delta is sum(attr) - (f(x) - f(x_ref)); ours the opposite
            refs = b if shap else (b.expand((n,) + tuple(shape)) if b.shape[0] == 1 else b)
            with torch.no_grad():
                fr = model(refs)
            idx = torch.arange(n)
            if shap:  # mean over the K baselines of f_c(x_ref_k)
                fr_c = torch.stack([fr[:, target[i]] for i in range(n)]).mean(1)
            else:
                fr_c = fr[idx, torch.tensor(target)]
            total = out[idx, torch.tensor(target)] - fr_c
            check(torch.isfinite(attr).all(), "non-finite attribution")
            check(float(attr.abs().max()) > 1e-6, f"{name}/{mode}/{kind}: attribution all zero")
            own_delta = total - attr.flatten(1).sum(1)
            check(float((own_delta - delta).abs().max()) < 1e-10, f"{name}/{mode}/{kind}: delta bookkeeping")
            worst = float(delta.abs().max())
            if mode == "cross_max":
                check(worst < 1e-10, f"{name}/{kind}: cross-max did not conserve ({worst:.2e})")
            print(f"  [{name}] {mode:9s} {kind:12s} max|delta| = {worst:.2e}")
            cases.append({
                "name": f"{mode}_{kind}",
                "captum": "DeepLiftShap" if shap else "DeepLift",
                "baseline_kind": kind,
                "baselines": tensor_json(b),
                "max_pool": mode,
                "attribution": tensor_json(attr),
                "total": tensor_json(total),
                "delta": tensor_json(delta),
            })
        if mode == "gradient" and has_pool:
            worst = max(max(abs(v) for v in c["delta"]["data"]) for c in cases
                        if c["max_pool"] == "gradient" and c["baseline_kind"] != "zero")
            check(worst > 1e-6, f"{name}: captum conserved with a ReLU before the pool -- has issue #1104 been fixed?")
    return {
        "generator": GENERATOR,
        "captum_version": captum.__version__,
        "torch_version": torch.__version__,
        "name": name,
        "network_source": f"tests/fixtures/lrp_{name}.json",
        "input_shape": lrp["input_shape"],
        "layers": layers,
        "input": lrp["input"],
        "target": target,
        "eps": 1e-10,
        "cases": cases,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures)")
    ap.add_argument("--networks", default=DEFAULT_OUT, help="directory holding lrp_{mlp,cnn,deep}.json")
    args = ap.parse_args()
    print(f"captum {captum.__version__}, torch {torch.__version__}")
    os.makedirs(args.out, exist_ok=True)
    for name, seed in NETWORKS.items():
        fixture = generate(name, seed, args.networks)
        text = json.dumps(fixture, separators=(",", ":"), allow_nan=False)
        path = os.path.join(args.out, f"deeplift_{name}.json")
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"wrote {os.path.normpath(path)} ({len(text) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
