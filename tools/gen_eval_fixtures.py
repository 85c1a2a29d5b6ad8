#!/usr/bin/env python3
"""Generate tests/fixtures/eval_quantus.json from the REAL Quantus 0.6.0: pixel flipping, region perturbation and the
similarity functions of its randomisation metric, for `relevance::eval` (tests/suite/eval.rs).

How to run (from the repository root; nothing is installed into the repository):

    ~/venv/bin/pip install torch numpy quantus==0.6.0        # quantus brings scipy and scikit-image
    ~/venv/bin/python tools/gen_eval_fixtures.py             # writes tests/fixtures/eval_quantus.json (seconds)
    ~/venv/bin/python tools/gen_eval_fixtures.py --out DIR   # write somewhere else

Deterministic (fixed seeds, one thread). Quantus runs models in float32 (`torch.Tensor(x)` in
`PyTorchModel._obtain_predictions`), so the networks are float32 with weights and inputs that are exact float32
values; the Rust side runs them in f64 and f32 and compares within 1e-6 of each curve's scale.

Networks (layer lists in the crate's fixture format, see tests/suite/common/mod.rs):
* "cnn": input [1, 10, 10]: Conv2d(1, 4, 3, padding=1) -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(100, 6) -> ReLU ->
  Linear(6, 3).
* "mlp2": input [2, 7, 7] (two channels, for regions summed over channels): Flatten -> Linear(98, 8) -> ReLU ->
  Linear(8, 4).
Attributions are Gaussian float64 values (no ties: Quantus orders with NumPy's unstable argsort, the crate breaks
ties by index, so tie-free attributions make both orders the same).

Cases (every metric with disable_warnings=True, perturb_baseline="black" = the sample's minimum, deterministic):
* pixel_flipping: PixelFlipping(features_in_step=s) for s in {1, 4} (Quantus asks s to divide the number of features) on "cnn", logits; s = 1 also with softmax=True.
  Quantus returns the score after each step (not f(x)).
* region_perturbation: RegionPerturbation(patch_size=k, regions_evaluation=m, order=o) for (k, m) in {(3, 100),
  (4, 5)} on "cnn" and (2, 10) on "mlp2", o in {morf, lerf}. Quantus returns f(x) - f(x_k) for k = 1..m.
* similarity: scipy spearmanr (Quantus' correlation_spearman, batched, on flattened maps) and Quantus' ssim (the
  flattened maps: a 1-D SSIM with window 7) of |a| / max|a| pairs as MPRT calls them, plus scikit-image's 2-D
  structural_similarity (window 7, data range of both) on [10, 10] and [8, 9] maps; pairs include ties (rounded
  values) for the average ranks.
"""
import argparse
import json
import os

import numpy as np
import quantus
import scipy
import skimage
import torch
from skimage.metrics import structural_similarity

torch.set_num_threads(1)


def tensor_json(a):
    a = np.ascontiguousarray(a.detach().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    assert np.all(np.isfinite(a))
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def layer_json(m):
    if isinstance(m, torch.nn.Linear):
        return {"type": "dense", "weight": tensor_json(m.weight), "bias": tensor_json(m.bias)}
    if isinstance(m, torch.nn.Conv2d):
        return {"type": "conv2d", "weight": tensor_json(m.weight), "bias": tensor_json(m.bias),
                "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation)}
    if isinstance(m, torch.nn.ReLU):
        return {"type": "relu"}
    if isinstance(m, torch.nn.MaxPool2d):
        p = lambda v: [v, v] if isinstance(v, int) else list(v)
        return {"type": "maxpool2d", "kernel": p(m.kernel_size), "stride": p(m.stride), "padding": p(m.padding)}
    if isinstance(m, torch.nn.Flatten):
        return {"type": "flatten"}
    raise ValueError(m)


def network(name, input_shape, layers, batch, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(*layers).float().eval()
    gen = np.random.default_rng(seed)
    x = gen.uniform(0.0, 1.0, size=(batch,) + input_shape).astype(np.float32)
    a = gen.normal(size=x.shape)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    y = np.argmax(logits, axis=1)
    spec = {"input_shape": list(input_shape), "layers": [layer_json(m) for m in model],
            "x": tensor_json(x), "attribution": tensor_json(a), "target": [int(v) for v in y]}
    return model, x, a, y, spec


def run(metric, model, x, a, y, softmax=False):
    out = metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", softmax=softmax)
    return np.asarray(out, dtype=np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    args = ap.parse_args()

    nets = {}
    nets["cnn"] = network("cnn", (1, 10, 10), [
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(100, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)], batch=3, seed=1)
    nets["mlp2"] = network("mlp2", (2, 7, 7), [
        torch.nn.Flatten(), torch.nn.Linear(98, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)], batch=2, seed=2)

    cases = []
    model, x, a, y, _ = nets["cnn"]
    for step in (1, 4):
        m = quantus.PixelFlipping(features_in_step=step, perturb_baseline="black", disable_warnings=True)
        cases.append({"kind": "pixel_flipping", "net": "cnn", "features_in_step": step, "softmax": False,
                      "result": tensor_json(run(m, model, x, a, y))})
    m = quantus.PixelFlipping(features_in_step=1, perturb_baseline="black", disable_warnings=True)
    cases.append({"kind": "pixel_flipping", "net": "cnn", "features_in_step": 1, "softmax": True,
                  "result": tensor_json(run(m, model, x, a, y, softmax=True))})
    for net, patch, regions in (("cnn", 3, 100), ("cnn", 4, 5), ("mlp2", 2, 10)):
        model, x, a, y, _ = nets[net]
        for order in ("morf", "lerf"):
            m = quantus.RegionPerturbation(patch_size=patch, regions_evaluation=regions, order=order,
                                           perturb_baseline="black", disable_warnings=True)
            cases.append({"kind": "region_perturbation", "net": net, "patch": patch, "regions_evaluation": regions,
                          "order": order, "result": tensor_json(run(m, model, x, a, y))})

    # similarity functions, as MPRT calls them: |a| / max|a| per sample, flattened, batched
    gen = np.random.default_rng(3)
    sims = []
    for shape, rounding in (((10, 10), None), ((10, 10), 1), ((8, 9), None)):
        a = gen.normal(size=(2,) + shape)
        b = 0.6 * a + 0.8 * gen.normal(size=a.shape)
        if rounding is not None:
            a, b = np.round(a, rounding), np.round(b, rounding)
        na = np.abs(a) / np.abs(a).reshape(2, -1).max(axis=1)[:, None, None]
        nb = np.abs(b) / np.abs(b).reshape(2, -1).max(axis=1)[:, None, None]
        flat_a, flat_b = na.reshape(2, -1), nb.reshape(2, -1)
        sims.append({
            "a": tensor_json(a), "b": tensor_json(b),
            "spearman_abs": tensor_json(quantus.similarity_func.correlation_spearman(flat_a, flat_b, batched=True)),
            "spearman": tensor_json(np.array([scipy.stats.spearmanr(a[i].ravel(), b[i].ravel())[0] for i in range(2)])),
            "ssim_flat": tensor_json(np.array(quantus.similarity_func.ssim(flat_a, flat_b, batched=True))),
            "ssim_2d": tensor_json(np.array([structural_similarity(
                na[i], nb[i], win_size=7,
                data_range=float(max(na[i].max(), nb[i].max()) - min(na[i].min(), nb[i].min())))
                for i in range(2)])),
        })

    out = {
        "generator": "tools/gen_eval_fixtures.py",
        "versions": {"quantus": quantus.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__, "scikit-image": skimage.__version__},
        "networks": {k: v[4] for k, v in nets.items()},
        "cases": cases,
        "similarity": sims,
    }
    path = os.path.join(args.out, "eval_quantus.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(cases)} perturbation cases, {len(sims)} similarity sets)")


if __name__ == "__main__":
    main()
