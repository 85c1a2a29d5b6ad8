#!/usr/bin/env python3
"""Generate tests/fixtures/softmax.json: a network that KEEPS its softmax (nn.Softmax at the output), explained by the
real captum DeepLift (its `softmax` rule) and by zennit (which has no rule for a softmax: its plain gradient applies).

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch zennit captum numpy
    ~/venv/bin/python tools/gen_softmax_fixtures.py             # writes tests/fixtures/softmax.json (a second)
    ~/venv/bin/python tools/gen_softmax_fixtures.py --out DIR   # write somewhere else

Produced with torch 2.15, zennit 0.5.1, captum 0.9.0 (versions written into the file); deterministic (fixed seed,
float64, one thread).

Network (float64): Linear(6, 8) -> ReLU -> Linear(8, 5) -> Softmax(dim=1), weights ~ N(0, 1/fan_in), biases
~ N(0, 0.3^2), rounded to 4 significant digits, as the crate's chain fixtures ("layers": dense, relu, dense, softmax
with its per-sample axis).
Inputs x: 3 samples ~ N(0, 1), rounded.

Cases
-----
* captum DeepLift (Rescale, eps 1e-10), multiply_by_inputs True (attributions) and False (multipliers), called with
  ONE sample at a time: captum's softmax rule subtracts the mean multiplier over the whole batch of inputs and
  baselines, so batched calls couple the samples; the crate takes that mean per sample, which equals captum called
  per sample. Baselines: zeros; a random baseline per sample; the input itself for sample 1 at the softmax input only
  is not reachable, so "near" = x + 1e-12 (every |dx| < eps at every layer: the gradient fallback everywhere).
  Targets: per sample [0, 3, 4]. Recorded: attributions, multipliers, convergence delta.
* zennit: composite EpsilonPlus-like LayerMapComposite([(Linear, Epsilon(1e-6)), (ReLU, Pass())]) with the softmax
  module left without a rule (the plain gradient), attr_output = one-hot(target) * output (the starting relevance is
  the target's probability, the crate's default seed). Recorded: relevance at the input.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from captum.attr import DeepLift
from zennit.attribution import Gradient
from zennit.composites import LayerMapComposite
from zennit.rules import Epsilon, Pass

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
TARGETS = [0, 3, 4]


def r4(t):
    return torch.tensor(np.array([float(f"{v:.4g}") for v in t.reshape(-1).tolist()]).reshape(t.shape))


def tensor_json(t):
    a = t.detach().cpu().numpy().astype(np.float64)
    assert np.all(np.isfinite(a))
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def build(gen):
    lin1, lin2 = torch.nn.Linear(6, 8), torch.nn.Linear(8, 5)
    for lin in (lin1, lin2):
        with torch.no_grad():
            lin.weight.copy_(r4(torch.randn(lin.weight.shape, generator=gen) / lin.weight.shape[1] ** 0.5))
            lin.bias.copy_(r4(0.3 * torch.randn(lin.bias.shape, generator=gen)))
    return torch.nn.Sequential(lin1, torch.nn.ReLU(), lin2, torch.nn.Softmax(dim=1)).eval(), lin1, lin2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    from importlib.metadata import version
    gen = torch.Generator().manual_seed(11)
    model, lin1, lin2 = build(gen)
    x = r4(torch.randn(3, 6, generator=gen))
    baselines = {
        "zero": torch.zeros_like(x),
        "random": r4(torch.randn(3, 6, generator=gen)),
        "near": x + 1e-12,
    }
    cases = []
    for name, b in baselines.items():
        rows_a, rows_m, deltas = [], [], []
        for i in range(x.shape[0]):
            xi, bi = x[i:i + 1].clone().requires_grad_(True), b[i:i + 1]
            a, d = DeepLift(model, eps=1e-10).attribute(xi, baselines=bi, target=TARGETS[i],
                                                         return_convergence_delta=True)
            m = DeepLift(model, multiply_by_inputs=False, eps=1e-10).attribute(
                x[i:i + 1].clone().requires_grad_(True), baselines=bi, target=TARGETS[i])
            rows_a.append(a.detach())
            rows_m.append(m.detach())
            deltas.append(float(d.item()))
        cases.append({"kind": "deeplift", "baseline_kind": name, "baseline": tensor_json(b),
                      "attribution": tensor_json(torch.cat(rows_a)), "multipliers": tensor_json(torch.cat(rows_m)),
                      "delta": deltas})
        print(f"deeplift {name}: max |delta| {max(abs(v) for v in deltas):.3e}")

    composite = LayerMapComposite([(torch.nn.Linear, Epsilon(1e-6)), (torch.nn.ReLU, Pass())])
    xz = x.clone().requires_grad_(True)
    with Gradient(model, composite) as attributor:
        out = model(x)
        seed = torch.zeros_like(out)
        seed[range(3), TARGETS] = 1.0
        _, rel = attributor(xz, attr_output=seed * out)
    cases.append({"kind": "zennit", "composite": "epsilon", "relevance": tensor_json(rel)})

    fx = {
        "generator": "tools/gen_softmax_fixtures.py",
        # read from the installed libraries (zennit has no __version__); torch's with its build tag
        "versions": {"torch": torch.__version__, "zennit": version("zennit"), "captum": version("captum")},
        "input_shape": [6],
        "layers": [
            {"type": "dense", "weight": tensor_json(lin1.weight), "bias": tensor_json(lin1.bias)},
            {"type": "relu"},
            {"type": "dense", "weight": tensor_json(lin2.weight), "bias": tensor_json(lin2.bias)},
            {"type": "softmax", "axis": 0},
        ],
        "x": tensor_json(x),
        "output": tensor_json(model(x)),
        "target": TARGETS,
        "cases": cases,
    }
    path = os.path.join(args.out, "softmax.json")
    with open(path, "w") as f:
        json.dump(fx, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
