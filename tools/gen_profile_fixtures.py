#!/usr/bin/env python3
"""Generate the profile-head DeepLIFT-SHAP fixture from the REAL bpnet-lite 1.1.0 and tangermeme 1.6.0.

How to run (from the repository root):

    ~/venv/bin/pip install torch onnx onnxruntime onnxscript tangermeme==1.6.0 bpnet-lite==1.1.0 numpy
    ~/venv/bin/python tools/gen_profile_fixtures.py            # writes the two files below
    ~/venv/bin/python tools/gen_profile_fixtures.py --out DIR  # write somewhere else

Writes
  tests/fixtures/onnx/sequence/bpnet_profile.onnx   the profile logits of the BPNet below, flattened: [N, 2 * 20]
  tests/fixtures/bpnet_profile_deep_lift_shap.json

The model is the small BPNet of tools/gen_bpnet_fixtures.py (bpnet-lite's `BPNet(n_filters=8, n_layers=3,
n_outputs=2, n_control_tracks=0, trimming=40)`, torch seed 0). Its profile head gives logits [N, 2, 20] for inputs of
length 100; the ONNX file holds `Flatten(BPNet(X)[0])` (TorchScript exporter, opset 17, float32 weights; the runs below
use the same values in float64).

Inputs: N = 2 random one-hot sequences of length 100 (numpy default_rng(0), as the count fixture) and R = 3 references
per sequence, `dinucleotide_shuffle(X, n=3, random_state=1)`, passed explicitly.

additive: bpnet-lite's own `bpnetlite.attribute.deep_lift_shap(ProfileWrapper(BPNet), X, references=refs, target=0)`,
which registers `_ProfileLogitScaling` (z -> z * softmax(z), z = logits - mean) with tangermeme's `_nonlinear` rule.
stop_gradient: no library has it in PyTorch; it is computed here with tangermeme's `deep_lift_shap` on a wrapper that
returns `sum(z * softmax(z).detach())` (z as above), the PyTorch form of ChromBPNet's `tf.stop_gradient` weighting.
Both are run with `hypothetical=False` and `hypothetical=True`, float64.

toy_fallback: a toy network (Conv1d(4, 3, 3), ReLU, Conv1d(3, 3, 3), random weights, the second output channel the
negative of the first and the third constant) wrapped as ProfileWrapper does, one sequence of length 10 and two random
references, run through tangermeme's `deep_lift_shap` with `additional_nonlinear_ops={_ProfileLogitScaling:
_nonlinear}` as bpnet-lite registers it: a third of the centred logits move by less than 1e-6, so the rule falls back
there to the gradient through the inner Softmax's own rule.

JSON: generator, versions, x [N][L] base indices, references [N][R][L], output [N] (f(x) = sum softmax(z) z),
reference_output [N][R], and per variant ("additive", "stop_gradient"): attributions [N][L] (the observed base's value),
hypothetical {"shape", "data"} [N, 4, L], gap [N] (sum attributions - (f(x) - mean_k f(ref_k))); toy_fallback:
{w1 [3*4*3], b1, w2 [3*3*3], b2, x [1][10], references [1][2][10], hypothetical}.
"""
import argparse
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)


class ProfileLogits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, X):
        return torch.flatten(self.model(X)[0], 1)


class StopGradientProfile(torch.nn.Module):
    """sum(z * softmax(z).detach()), z = flattened logits minus their mean (ChromBPNet's stop_gradient form)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, X, X_ctl=None):
        logits = torch.flatten(self.model(X)[0], 1)
        z = logits - logits.mean(dim=-1, keepdim=True)
        return (z * torch.softmax(z, dim=-1).detach()).sum(dim=-1, keepdim=True)


class CentredScaling(torch.nn.Module):
    """bpnet-lite's ProfileWrapper on a plain network: flatten, minus the mean, _ProfileLogitScaling, sum."""

    def __init__(self, model):
        super().__init__()
        from bpnetlite.bpnet import _ProfileLogitScaling
        self.model = model
        self.scaling = _ProfileLogitScaling()

    def forward(self, X):
        logits = torch.flatten(self.model(X), 1)
        logits = logits - logits.mean(dim=-1, keepdim=True)
        return self.scaling(logits).sum(dim=-1, keepdim=True)


def toy_fallback(deep_lift_shap):
    """A toy network whose third output channel is constant and whose first two cancel in the mean, so that
    |dz| < 1e-6 at a third of the logits: tangermeme's _nonlinear rule on _ProfileLogitScaling falls back there to
    the gradient through the inner Softmax's own rule, while the other logits take the secant."""
    from bpnetlite.bpnet import _ProfileLogitScaling
    from tangermeme._deep_lift_utils import _nonlinear

    g = torch.Generator().manual_seed(5)
    w1 = torch.randn(3, 4, 3, generator=g, dtype=torch.float64)
    b1 = torch.randn(3, generator=g, dtype=torch.float64) * 0.1
    w2 = torch.randn(3, 3, 3, generator=g, dtype=torch.float64)
    b2 = torch.randn(3, generator=g, dtype=torch.float64) * 0.1
    w2[1], b2[1] = -w2[0], -b2[0]
    w2[2], b2[2] = 0.0, 0.3
    conv1, conv2 = torch.nn.Conv1d(4, 3, 3).double(), torch.nn.Conv1d(3, 3, 3).double()
    with torch.no_grad():
        conv1.weight.copy_(w1), conv1.bias.copy_(b1), conv2.weight.copy_(w2), conv2.bias.copy_(b2)
    net = torch.nn.Sequential(conv1, torch.nn.ReLU(), conv2).eval()
    model = CentredScaling(net).eval()
    rng = np.random.default_rng(3)
    bases = rng.integers(0, 4, size=(1, 10))
    ref_bases = rng.integers(0, 4, size=(1, 2, 10))
    X = torch.zeros(1, 4, 10, dtype=torch.float64)
    X[0, bases[0], torch.arange(10)] = 1.0
    refs = torch.zeros(1, 2, 4, 10, dtype=torch.float64)
    for k in range(2):
        refs[0, k, ref_bases[0, k], torch.arange(10)] = 1.0
    with torch.no_grad():
        z = torch.flatten(net(torch.cat([X, refs[0]])), 1)
        z = z - z.mean(dim=-1, keepdim=True)
        dz = (z[:1] - z[1:]).abs()
        assert (dz < 1e-6).sum() >= 6 and (dz > 1e-3).sum() >= 6, dz
    hyp = deep_lift_shap(model, X, references=refs, target=0, hypothetical=True, device="cpu",
                         additional_nonlinear_ops={_ProfileLogitScaling: _nonlinear}).numpy()
    return {"w1": w1.reshape(-1).tolist(), "b1": b1.tolist(), "w2": w2.reshape(-1).tolist(), "b2": b2.tolist(),
            "x": bases.tolist(), "references": ref_bases.tolist(),
            "hypothetical": {"shape": list(hyp.shape), "data": [float(v) for v in hyp.reshape(-1)]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")
    os.makedirs(os.path.join(out, "onnx", "sequence"), exist_ok=True)

    import bpnetlite
    import tangermeme
    from bpnetlite.attribute import deep_lift_shap as bpnet_deep_lift_shap
    from bpnetlite.bpnet import BPNet, ProfileWrapper
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    torch.manual_seed(0)
    bpnet = BPNet(n_filters=8, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=40, verbose=False).eval()
    n, r, length = 2, 3, 100
    rng = np.random.default_rng(0)
    bases = rng.integers(0, 4, size=(n, length))
    x = np.zeros((n, 4, length))
    for s in range(n):
        x[s, bases[s], np.arange(length)] = 1.0

    path = os.path.join(out, "onnx", "sequence", "bpnet_profile.onnx")
    torch.onnx.export(ProfileLogits(bpnet).eval(), (torch.tensor(x, dtype=torch.float32),), path, dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}})

    bp64 = BPNet(n_filters=8, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=40, verbose=False)
    bp64.load_state_dict(bpnet.state_dict())
    bp64 = bp64.double().eval()
    X = torch.tensor(x)
    refs = dinucleotide_shuffle(X, n=r, random_state=1).double()
    wrapper = ProfileWrapper(bp64).eval()
    held = StopGradientProfile(bp64).eval()
    with torch.no_grad():
        y = wrapper(X)[:, 0].numpy()
        y_refs = wrapper(refs.reshape(n * r, 4, length))[:, 0].numpy().reshape(n, r)
        assert np.allclose(held(X)[:, 0].numpy(), y, rtol=1e-14, atol=0)

    variants = {}
    for name, run in [
        ("additive", lambda hyp: bpnet_deep_lift_shap(wrapper, X, references=refs, target=0, hypothetical=hyp,
                                                      device="cpu")),
        ("stop_gradient", lambda hyp: deep_lift_shap(held, X, references=refs, target=0, hypothetical=hyp,
                                                     device="cpu", warning_threshold=1e9)),
    ]:
        attr = run(False).numpy()
        hyp = run(True).numpy()
        assert np.allclose(attr, hyp * x, rtol=0, atol=1e-15)
        gap = attr.sum(axis=(1, 2)) - (y - y_refs.mean(axis=1))
        variants[name] = {
            "attributions": [[float(attr[s, bases[s, i], i]) for i in range(length)] for s in range(n)],
            "hypothetical": {"shape": list(hyp.shape), "data": [float(v) for v in hyp.reshape(-1)]},
            "gap": [float(v) for v in gap],
        }
        print(name, "gap", gap, "relative", np.abs(gap) / np.abs(y - y_refs.mean(axis=1)))

    fx_toy = toy_fallback(deep_lift_shap)

    fx = {
        "generator": "tools/gen_profile_fixtures.py",
        "torch_version": torch.__version__,
        "tangermeme_version": tangermeme.__version__,
        "bpnetlite_version": bpnetlite.__version__,
        "length": length,
        "x": bases.tolist(),
        "references": refs.numpy().argmax(axis=2).tolist(),
        "output": [float(v) for v in y],
        "reference_output": [[float(v) for v in row] for row in y_refs],
        **variants,
        "toy_fallback": fx_toy,
    }
    with open(os.path.join(out, "bpnet_profile_deep_lift_shap.json"), "w") as f:
        json.dump(fx, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote bpnet_profile.onnx and bpnet_profile_deep_lift_shap.json")


if __name__ == "__main__":
    main()
