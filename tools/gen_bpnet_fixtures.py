#!/usr/bin/env python3
"""Generate the DeepLIFT-SHAP fixture of a small BPNet from the REAL tangermeme 1.6.0 and bpnet-lite 1.1.0.

How to run (from the repository root):

    ~/venv/bin/pip install torch onnx onnxruntime onnxscript tangermeme==1.6.0 bpnet-lite==1.1.0 numpy
    ~/venv/bin/python tools/gen_bpnet_fixtures.py            # writes the two files below
    ~/venv/bin/python tools/gen_bpnet_fixtures.py --out DIR  # write somewhere else
    ~/venv/bin/python tools/gen_bpnet_fixtures.py --wide     # the wide variant instead (below)

Writes
  tests/fixtures/onnx/sequence/bpnet_counts.onnx   bpnet-lite's CountWrapper(BPNet) (TorchScript exporter, opset 17)
  tests/fixtures/bpnet_deep_lift_shap.json

The model is bpnet-lite's `BPNet(n_filters=8, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=40)` with its
random initialisation (torch seed 0): a first Conv1d of kernel 21, three dilated residual Conv1d blocks (dilation 2,
4, 8, `X + relu(conv(X))`), a profile head (Conv1d of kernel 75, cropped) and a count head (the mean of the residual
tower's output over the cropped length `[3, 97)` and a Linear layer). bpnet-lite's `CountWrapper` returns the count
head alone, `[N, 1]`, which is what tangermeme's `deep_lift_shap` needs; the exported ONNX graph holds only what the
count head reads. Weights are float32 in the file; the tangermeme runs use the same values in float64.

Inputs: N = 2 random one-hot sequences of length 100 (numpy seed 0), and R = 3 references per sequence from
tangermeme's own `dinucleotide_shuffle(X, n=3, random_state=0)`, passed to `deep_lift_shap` explicitly as a tensor
[N, R, 4, L]. `deep_lift_shap(model, X, references=refs, target=0, device="cpu")` is run with `hypothetical=False`
(attributions) and `hypothetical=True` (hypothetical contributions), in float64.

`--wide` writes `onnx/sequence/bpnet_counts_wide.onnx` and `bpnet_wide_deep_lift_shap.json` instead: the same with
`n_filters=16` on sequences of length 200 (the same seeds), wide enough that the dilated convolutions take the crate's
Winograd F(4, 3) path (at least 16 channels and 64 outputs), so that path is checked against tangermeme too.

JSON: generator, versions, length, x (base index per position, [N][L]), references ([N][R][L] base indices),
output ([N], f(x)), reference_output ([N][R], f(ref)), attributions ([N][L], the observed base's value; the others
are 0), hypothetical {"shape", "data"} [N, 4, L], gap ([N], sum(attributions) - (f(x) - mean_k f(ref_k))).
"""
import argparse
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--wide", action="store_true", help="16 filters on 200 bp (the Winograd path)")
    args = ap.parse_args()
    filters, length, suffix = (16, 200, "_wide") if args.wide else (8, 100, "")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")
    os.makedirs(os.path.join(out, "onnx", "sequence"), exist_ok=True)

    import bpnetlite
    import tangermeme
    from bpnetlite.bpnet import BPNet, CountWrapper
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    torch.manual_seed(0)
    bpnet = BPNet(n_filters=filters, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=40, verbose=False).eval()
    model = CountWrapper(bpnet).eval()
    n, r = 2, 3
    rng = np.random.default_rng(0)
    bases = rng.integers(0, 4, size=(n, length))
    x = np.zeros((n, 4, length))
    for s in range(n):
        x[s, bases[s], np.arange(length)] = 1.0

    path = os.path.join(out, "onnx", "sequence", f"bpnet_counts{suffix}.onnx")
    torch.onnx.export(model, (torch.tensor(x, dtype=torch.float32),), path, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["counts"], dynamic_axes={"input": {0: "batch"}})

    bp64 = BPNet(n_filters=filters, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=40, verbose=False)
    bp64.load_state_dict(bpnet.state_dict())
    m64 = CountWrapper(bp64.double()).eval()
    X = torch.tensor(x)
    refs = dinucleotide_shuffle(X, n=r, random_state=0).double()
    assert refs.shape == (n, r, 4, length)
    attr = deep_lift_shap(m64, X, references=refs, target=0, device="cpu")
    hyp = deep_lift_shap(m64, X, references=refs, target=0, hypothetical=True, device="cpu")
    with torch.no_grad():
        y = m64(X)[:, 0].numpy()
        y_refs = m64(refs.reshape(n * r, 4, length))[:, 0].numpy().reshape(n, r)
    attr, hyp = attr.numpy(), hyp.numpy()
    assert np.allclose(attr, hyp * x, rtol=0, atol=1e-15)
    gap = attr.sum(axis=(1, 2)) - (y - y_refs.mean(axis=1))
    assert np.abs(gap).max() < 1e-10, gap
    assert np.abs(attr).max() > 0
    ref_bases = refs.numpy().argmax(axis=2)
    assert np.array_equal(refs.numpy().sum(axis=2), np.ones((n, r, length)))

    fx = {
        "generator": "tools/gen_bpnet_fixtures.py" + (" --wide" if args.wide else ""),
        "torch_version": torch.__version__,
        "tangermeme_version": tangermeme.__version__,
        "bpnetlite_version": bpnetlite.__version__,
        "length": length,
        "x": bases.tolist(),
        "references": ref_bases.tolist(),
        "output": [float(v) for v in y],
        "reference_output": [[float(v) for v in row] for row in y_refs],
        "attributions": [[float(attr[s, bases[s, i], i]) for i in range(length)] for s in range(n)],
        "hypothetical": {"shape": list(hyp.shape), "data": [float(v) for v in hyp.reshape(-1)]},
        "gap": [float(v) for v in gap],
    }
    name = "bpnet_wide_deep_lift_shap.json" if args.wide else "bpnet_deep_lift_shap.json"
    with open(os.path.join(out, name), "w") as f:
        json.dump(fx, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote bpnet_counts{suffix}.onnx and {name}; gap", gap)


if __name__ == "__main__":
    main()
