#!/usr/bin/env python3
"""Generate the DeepLIFT-SHAP fixture of a small BPNet WITH CONTROL TRACKS from the REAL tangermeme 1.6.0 and
bpnet-lite 1.1.0 (issue #22: held inputs).

How to run (from the repository root):

    ~/venv/bin/pip install torch tangermeme==1.6.0 bpnet-lite==1.1.0 numpy
    ~/venv/bin/python tools/gen_bpnet_control_fixtures.py            # writes the file below
    ~/venv/bin/python tools/gen_bpnet_control_fixtures.py --out DIR  # write somewhere else

Writes
  tests/fixtures/bpnet_control_deep_lift_shap.json

The model is bpnet-lite's `BPNet(n_filters=8, n_layers=2, n_outputs=2, n_control_tracks=2, trimming=40)`
(`bpnetlite/bpnet.py`) with its random initialisation (torch seed 0), every weight then rounded to 6 decimals (so the
file stays small; the rounded values ARE the model), in float64. `forward(X, X_ctl)`: a first Conv1d(4, 8, 21,
padding 10) and ReLU, two dilated residual blocks `X + relu(conv(X))` (dilation 2, 4); the profile head concatenates
X_ctl [N, 2, L] to the body's 8 channels, Conv1d(10, 2, 75, padding 37), cropped to [40, 60); the count head is the
mean of the body over [3, 97) (`max(start - 37, 0):end + 37`) concatenated with `log(sum(X_ctl[:, :, 3:97]) + 1)`,
then Linear(9, 1).

Inputs: N = 2 random one-hot sequences of length 100 (numpy default_rng(0)), control tracks X_ctl [N, 2, 100] of
Poisson(1.5) counts (same generator, drawn after the sequences), and R = 3 references per sequence from tangermeme's
`dinucleotide_shuffle(X, n=3, random_state=0)`, passed explicitly [N, R, 4, L]. X_ctl goes in `args=(X_ctl,)`:
tangermeme's `deep_lift_shap` (`tangermeme/deep_lift_shap.py`) takes `a[Xi]` for each (sequence, reference) pair and
concatenates it twice (`torch.cat([arg, arg])`), so the input and every reference of a sequence see that sequence's
X_ctl, and only X is attributed (`autograd.grad(y.sum(), _X)`).

count: tangermeme's `deep_lift_shap(CountWrapper(BPNet), X, args=(X_ctl,), references=refs, target=0)`.
profile: bpnet-lite's `bpnetlite.attribute.deep_lift_shap(ProfileWrapper(BPNet), X, args=(X_ctl,), references=refs,
target=0)` (additive: `_ProfileLogitScaling` with tangermeme's `_nonlinear` rule).
Both with `hypothetical=False` (attributions) and `hypothetical=True`, float64, device cpu.

JSON: generator, versions, config {n_filters, n_layers, n_outputs, n_control_tracks, trimming, length},
weights {name: {"shape", "data"}} (PyTorch state_dict names and layouts), x [N][L] base indices, x_ctl
{"shape": [N, 2, L], "data"} (integers), references [N][R][L] base indices, profile_logits {"shape": [N, 2, 20],
"data"} (BPNet(X, X_ctl)[0]), counts [N] (BPNet(X, X_ctl)[1]), and per head ("count", "profile"): output [N] (the
wrapper's value at x), reference_output [N][R], attributions [N][L] (the observed base's value), hypothetical
{"shape", "data"} [N, 4, L], gap [N] (sum attributions - (f(x) - mean_k f(ref_k))).
"""
import argparse
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)

CONFIG = dict(n_filters=8, n_layers=2, n_outputs=2, n_control_tracks=2, trimming=40)


def flat(a):
    return {"shape": list(a.shape), "data": [float(v) for v in np.asarray(a).reshape(-1)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")
    os.makedirs(out, exist_ok=True)

    import bpnetlite
    import tangermeme
    from bpnetlite.attribute import deep_lift_shap as bpnet_deep_lift_shap
    from bpnetlite.bpnet import BPNet, CountWrapper, ProfileWrapper
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    torch.manual_seed(0)
    bpnet = BPNet(**CONFIG, verbose=False)
    state = {k: torch.tensor(np.round(v.double().numpy(), 6)) for k, v in bpnet.state_dict().items()}
    bp64 = BPNet(**CONFIG, verbose=False).double()
    bp64.load_state_dict(state)
    bp64 = bp64.eval()

    n, r, length = 2, 3, 100
    rng = np.random.default_rng(0)
    bases = rng.integers(0, 4, size=(n, length))
    x = np.zeros((n, 4, length))
    for s in range(n):
        x[s, bases[s], np.arange(length)] = 1.0
    x_ctl = rng.poisson(1.5, size=(n, CONFIG["n_control_tracks"], length)).astype(np.float64)

    X = torch.tensor(x)
    X_ctl = torch.tensor(x_ctl)
    refs = dinucleotide_shuffle(X, n=r, random_state=0).double()
    assert refs.shape == (n, r, 4, length)
    assert np.array_equal(refs.numpy().sum(axis=2), np.ones((n, r, length)))
    ref_bases = refs.numpy().argmax(axis=2)
    ctl_refs = X_ctl.repeat_interleave(r, dim=0)  # each reference with its sequence's control tracks

    with torch.no_grad():
        logits, counts = bp64(X, X_ctl)
        # the control tracks matter: the outputs move when they are zeroed
        logits0, counts0 = bp64(X, torch.zeros_like(X_ctl))
        assert (counts - counts0).abs().min() > 1e-3 and (logits - logits0).abs().max() > 1e-3

    heads = {}
    for name, model, run in [
        ("count", CountWrapper(bp64).eval(), deep_lift_shap),
        ("profile", ProfileWrapper(bp64).eval(), bpnet_deep_lift_shap),
    ]:
        attr = run(model, X, args=(X_ctl,), references=refs, target=0, hypothetical=False, device="cpu").numpy()
        hyp = run(model, X, args=(X_ctl,), references=refs, target=0, hypothetical=True, device="cpu").numpy()
        with torch.no_grad():
            y = model(X, X_ctl)[:, 0].numpy()
            y_refs = model(refs.reshape(n * r, 4, length), ctl_refs)[:, 0].numpy().reshape(n, r)
        assert np.allclose(attr, hyp * x, rtol=0, atol=1e-15)
        gap = attr.sum(axis=(1, 2)) - (y - y_refs.mean(axis=1))
        assert np.abs(gap).max() < 1e-10, (name, gap)
        assert np.abs(attr).max() > 0
        heads[name] = {
            "output": [float(v) for v in y],
            "reference_output": [[float(v) for v in row] for row in y_refs],
            "attributions": [[float(attr[s, bases[s, i], i]) for i in range(length)] for s in range(n)],
            "hypothetical": flat(hyp),
            "gap": [float(v) for v in gap],
        }
        print(name, "gap", gap, "f(x) - mean f(ref)", y - y_refs.mean(axis=1))

    fx = {
        "generator": "tools/gen_bpnet_control_fixtures.py",
        "torch_version": torch.__version__,
        "tangermeme_version": tangermeme.__version__,
        "bpnetlite_version": bpnetlite.__version__,
        "config": {**CONFIG, "length": length},
        "weights": {k: flat(v.numpy()) for k, v in state.items()},
        "x": bases.tolist(),
        "x_ctl": {"shape": list(x_ctl.shape), "data": [int(v) for v in x_ctl.reshape(-1)]},
        "references": ref_bases.tolist(),
        "profile_logits": flat(logits.numpy()),
        "counts": [float(v) for v in counts[:, 0].numpy()],
        **heads,
    }
    path = os.path.join(out, "bpnet_control_deep_lift_shap.json")
    with open(path, "w") as f:
        json.dump(fx, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
