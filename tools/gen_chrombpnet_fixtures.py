#!/usr/bin/env python3
"""Generate the two-output BPNet and ChromBPNet fixtures from the REAL bpnet-lite 1.1.0 and tangermeme 1.6.0,
exported with both PyTorch ONNX exporters.

How to run (from the repository root):

    ~/venv/bin/pip install torch onnx onnxruntime onnxscript tangermeme==1.6.0 bpnet-lite==1.1.0 numpy
    ~/venv/bin/python tools/gen_chrombpnet_fixtures.py            # writes the files below
    ~/venv/bin/python tools/gen_chrombpnet_fixtures.py --out DIR  # write somewhere else

Writes (in tests/fixtures/)
  onnx/sequence/bpnet_heads_torchscript.onnx  bpnet-lite's BPNet, both heads: outputs "profile" [N, 2, 60] and
                                              "counts" [N, 1] (torch.onnx.export(dynamo=False), opset 17)
  onnx/sequence/bpnet_heads_dynamo.onnx       the same model, torch.onnx.export(dynamo=True), opset 18
  onnx/sequence/chrombpnet_torchscript.onnx   bpnet-lite's ChromBPNet(bias, accessibility): outputs "profile"
                                              [N, 1, 60] and "counts" [N, 1] (dynamo=False, opset 17)
  onnx/sequence/chrombpnet_dynamo.onnx        the same model, dynamo=True, opset 18
  onnx/sequence/logsumexp_counts_torchscript.onnx  the count heads of two small BPNets combined by
                                              `torch.logsumexp(torch.cat([acc, bias], -1), -1, keepdim=True)` (the
                                              form of bpnet-lite's ChromBPNet.fit): output "counts" [N, 1]
                                              (dynamo=False, opset 17; one `ReduceLogSumExp` node)
  onnx/sequence/logsumexp_counts_dynamo.onnx  the same model, dynamo=True, opset 18
  chrombpnet_fixtures.json

Models (float32 weights in the files; the float64 runs below use the same values), random initialisation:
  BPNet: torch.manual_seed(0), `BPNet(n_filters=8, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=20)`:
    first Conv1d of kernel 21, dilated residual Conv1d blocks (dilation 2, 4, 8), profile head (Conv1d of kernel
    75, cropped to [20, 80)) and count head (mean of the tower over [0, 100) and a Linear layer).
  ChromBPNet: torch.manual_seed(1), bias = `BPNet(n_filters=8, n_layers=2, n_outputs=1, n_control_tracks=0,
    trimming=15)` (profile [N, 1, 70]), accessibility = `BPNet(n_filters=8, n_layers=3, n_outputs=1,
    n_control_tracks=0, trimming=20)` (profile [N, 1, 60]); `ChromBPNet(bias, accessibility)` adds the profiles
    (the bias profile cropped by 5 on each side: a Slice of computed data) and combines the counts as
    `log(exp(acc_counts) + exp(bias_counts))` (its `_Log` and `_Exp` modules).
  LogSumExpCounts: torch.manual_seed(4), bias = `BPNet(n_filters=4, n_layers=1, n_outputs=1, n_control_tracks=0,
    trimming=15)`, accessibility = `BPNet(n_filters=4, n_layers=2, n_outputs=1, n_control_tracks=0, trimming=20)`;
    only the counts are returned, so the files hold no profile head.
The dynamo exports carry every node's PyTorch stack trace and export bookkeeping in `metadata_props` (about 30 KB for
ChromBPNet); those are removed before writing (the graph, its weights and value_info types are unchanged), nothing
else is. Weights are stored in the file (`external_data=False`).

Inputs: N = 2 random one-hot sequences of length 100 (numpy default_rng(2)); R = 3 references per sequence,
tangermeme's `dinucleotide_shuffle(X, n=3, random_state=3)`, passed explicitly as [N, R, 4, L].

JSON
  generator, versions, length, x [N][L] base indices, references [N][R][L] base indices
  onnxruntime: {file stem: {"profile": T, "counts": T}}   onnxruntime 1.x's float32 outputs of each file on x
                                                          (floats as the shortest float32 repr)
  torch_f64: {"bpnet": {...}, "chrombpnet": {...}}        the torch model in float64 on x
  chrombpnet_counts: DeepLIFT-SHAP of CountWrapper(ChromBPNet) by `bpnetlite.attribute.deep_lift_shap` (which is
      tangermeme's `deep_lift_shap` with `additional_nonlinear_ops={_ProfileLogitScaling, _Log, _Exp: _nonlinear}`),
      target 0, float64, hypothetical=True: {"output" [N], "reference_output" [N][R], "hypothetical" T [N, 4, L],
      "gap" [N] (sum of the observed-base hypothetical values - (f(x) - mean f(ref)))}
  logsumexp_counts: onnxruntime {file stem: T} and torch_f64 T of LogSumExpCounts on x, and
      "tangermeme_gap" [N]: the gap of tangermeme's `deep_lift_shap` (bpnet-lite's rules registered too), which has no
      rule for the functional `torch.logsumexp`: torch's gradient passes through it, so it is not additive
  chrombpnet_counts_unregistered_gap: the same gap from tangermeme's `deep_lift_shap` called directly, without
      the `_Log`/`_Exp` rules (torch's own gradients pass through exp and log): [N]
  chrombpnet_profile: the same for ProfileWrapper(ChromBPNet) (`Σ softmax(z)·z`, z the centred flattened profile
      logits; bpnet-lite's `_ProfileLogitScaling` rule), hypothetical=True: {"output", "reference_output",
      "hypothetical", "gap"}
A tensor T is {"shape": [...], "data": [flat, C order]}.

The script checks: onnxruntime equals torch (float32) within 1e-5 relative; float64 attributions of the observed
bases sum to f(x) - mean f(ref) within 1e-10 for the registered runs.
"""
import argparse
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)

N, R, LENGTH = 2, 3, 100


def tensor(a, f32=False):
    a = np.asarray(a)
    conv = (lambda v: float(str(np.float32(v)))) if f32 else float
    return {"shape": list(a.shape), "data": [conv(v) for v in a.reshape(-1)]}


def strip_metadata(path):
    import onnx
    m = onnx.load(path)
    for item in [m.graph, *m.graph.node, *m.graph.value_info, *m.graph.initializer, *m.graph.input,
                 *m.graph.output]:
        del item.metadata_props[:]
    onnx.save(m, path)


class LogSumExpCounts(torch.nn.Module):
    """The counts of two BPNets combined with torch.logsumexp of their concatenation (ChromBPNet.fit's form)."""

    def __init__(self, bias, accessibility):
        super().__init__()
        self.bias = bias
        self.accessibility = accessibility

    def forward(self, X, X_ctl=None):
        counts = torch.cat([self.accessibility(X)[1], self.bias(X)[1]], dim=-1)
        return torch.logsumexp(counts, dim=-1, keepdim=True)


def export(model, x, path, dynamo, outputs=("profile", "counts")):
    kw = dict(input_names=["input"], output_names=list(outputs))
    if dynamo:
        torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, external_data=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), **kw)
        strip_metadata(path)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17,
                          dynamic_axes={"input": {0: "batch"}}, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")
    seq_dir = os.path.join(out, "onnx", "sequence")
    os.makedirs(seq_dir, exist_ok=True)

    import bpnetlite
    import onnxruntime as ort
    import tangermeme
    from bpnetlite.attribute import deep_lift_shap as bpnet_deep_lift_shap
    from bpnetlite.bpnet import BPNet, CountWrapper, ProfileWrapper
    from bpnetlite.chrombpnet import ChromBPNet
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    def bpnet():
        return BPNet(n_filters=8, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=20, verbose=False)

    def chrombpnet():
        bias = BPNet(n_filters=8, n_layers=2, n_outputs=1, n_control_tracks=0, trimming=15, verbose=False)
        acc = BPNet(n_filters=8, n_layers=3, n_outputs=1, n_control_tracks=0, trimming=20, verbose=False)
        return ChromBPNet(bias, acc)

    torch.manual_seed(0)
    models = {"bpnet": bpnet().eval()}
    torch.manual_seed(1)
    models["chrombpnet"] = chrombpnet().eval()

    rng = np.random.default_rng(2)
    bases = rng.integers(0, 4, size=(N, LENGTH))
    x = np.zeros((N, 4, LENGTH))
    for s in range(N):
        x[s, bases[s], np.arange(LENGTH)] = 1.0
    x32 = torch.tensor(x, dtype=torch.float32)

    files = {
        "bpnet_heads_torchscript": ("bpnet", False),
        "bpnet_heads_dynamo": ("bpnet", True),
        "chrombpnet_torchscript": ("chrombpnet", False),
        "chrombpnet_dynamo": ("chrombpnet", True),
    }
    onnxruntime_out = {}
    for stem, (name, dynamo) in files.items():
        path = os.path.join(seq_dir, stem + ".onnx")
        export(models[name], x32, path, dynamo)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        profile, counts = sess.run(["profile", "counts"], {"input": x.astype(np.float32)})
        with torch.no_grad():
            tp, tc = models[name](x32)
        for got, want in [(profile, tp), (counts, tc)]:
            want = want.numpy()
            assert got.shape == want.shape, (stem, got.shape, want.shape)
            dev = np.abs(got - want).max() / np.abs(want).max()
            assert dev < 1e-5, (stem, dev)
        onnxruntime_out[stem] = {"profile": tensor(profile, f32=True), "counts": tensor(counts, f32=True)}

    # float64 copies with the same (float32) values
    torch.manual_seed(0)
    m64 = {"bpnet": bpnet(), "chrombpnet": None}
    m64["bpnet"].load_state_dict(models["bpnet"].state_dict())
    torch.manual_seed(1)
    m64["chrombpnet"] = chrombpnet()
    m64["chrombpnet"].load_state_dict(models["chrombpnet"].state_dict())
    X = torch.tensor(x)
    torch_f64 = {}
    for name, m in m64.items():
        m.double().eval()
        with torch.no_grad():
            p, c = m(X)
        torch_f64[name] = {"profile": tensor(p.numpy()), "counts": tensor(c.numpy())}

    refs = dinucleotide_shuffle(X, n=R, random_state=3).double()
    assert refs.shape == (N, R, 4, LENGTH)
    assert np.array_equal(refs.numpy().sum(axis=2), np.ones((N, R, LENGTH)))
    ref_bases = refs.numpy().argmax(axis=2)
    chrom = m64["chrombpnet"]

    def run(wrapper, explain, check_gap=True):
        hyp = explain(wrapper, X, references=refs, target=0, hypothetical=True, device="cpu",
                      warning_threshold=1e9).numpy()
        with torch.no_grad():
            y = wrapper(X)[:, 0].numpy()
            y_refs = wrapper(refs.reshape(N * R, 4, LENGTH))[:, 0].numpy().reshape(N, R)
        gap = (hyp * x).sum(axis=(1, 2)) - (y - y_refs.mean(axis=1))
        if check_gap:
            assert np.abs(gap).max() < 1e-10, gap
        return {"output": [float(v) for v in y], "reference_output": y_refs.tolist(), "hypothetical": tensor(hyp),
                "gap": [float(v) for v in gap]}

    def logsumexp_counts():
        bias = BPNet(n_filters=4, n_layers=1, n_outputs=1, n_control_tracks=0, trimming=15, verbose=False)
        acc = BPNet(n_filters=4, n_layers=2, n_outputs=1, n_control_tracks=0, trimming=20, verbose=False)
        return LogSumExpCounts(bias, acc)

    torch.manual_seed(4)
    lse = logsumexp_counts().eval()
    lse_out = {"onnxruntime": {}}
    with torch.no_grad():
        want = lse(x32).numpy()
    for stem, dynamo in [("logsumexp_counts_torchscript", False), ("logsumexp_counts_dynamo", True)]:
        path = os.path.join(seq_dir, stem + ".onnx")
        export(lse, x32, path, dynamo, outputs=("counts",))
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(["counts"], {
            "input": x.astype(np.float32)})[0]
        assert np.abs(got - want).max() / np.abs(want).max() < 1e-5, stem
        lse_out["onnxruntime"][stem] = tensor(got, f32=True)
    torch.manual_seed(4)
    lse64 = logsumexp_counts()
    lse64.load_state_dict(lse.state_dict())
    lse64 = lse64.double().eval()
    with torch.no_grad():
        lse_out["torch_f64"] = tensor(lse64(X).numpy())
    lse_out["tangermeme_gap"] = run(lse64, bpnet_deep_lift_shap, check_gap=False)["gap"]

    counts = run(CountWrapper(chrom).eval(), bpnet_deep_lift_shap)
    unregistered = run(CountWrapper(chrom).eval(), deep_lift_shap, check_gap=False)["gap"]
    profile = run(ProfileWrapper(chrom).eval(), bpnet_deep_lift_shap)

    fx = {
        "generator": "tools/gen_chrombpnet_fixtures.py",
        "torch_version": torch.__version__,
        "onnxruntime_version": ort.__version__,
        "tangermeme_version": tangermeme.__version__,
        "bpnetlite_version": bpnetlite.__version__,
        "length": LENGTH,
        "x": bases.tolist(),
        "references": ref_bases.tolist(),
        "onnxruntime": onnxruntime_out,
        "torch_f64": torch_f64,
        "chrombpnet_counts": counts,
        "chrombpnet_counts_unregistered_gap": unregistered,
        "logsumexp_counts": lse_out,
        "chrombpnet_profile": profile,
    }
    with open(os.path.join(out, "chrombpnet_fixtures.json"), "w") as f:
        json.dump(fx, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("counts gap", counts["gap"], "unregistered gap", unregistered, "profile gap", profile["gap"],
          "logsumexp tangermeme gap", lse_out["tangermeme_gap"])


if __name__ == "__main__":
    main()
