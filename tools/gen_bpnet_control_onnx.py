#!/usr/bin/env python3
"""Export the BPNet WITH CONTROL TRACKS of tests/fixtures/bpnet_control_deep_lift_shap.json to ONNX with both PyTorch
exporters, and record onnxruntime's outputs (issue #22: a graph with two inputs, X explained and X_ctl held).

How to run (from the repository root, after tools/gen_bpnet_control_fixtures.py):

    ~/venv/bin/pip install torch onnx onnxruntime onnxscript bpnet-lite==1.1.0 numpy
    ~/venv/bin/python tools/gen_bpnet_control_onnx.py            # writes the files below
    ~/venv/bin/python tools/gen_bpnet_control_onnx.py --out DIR  # write somewhere else

Reads
  tests/fixtures/bpnet_control_deep_lift_shap.json   the model's weights (float64, rounded to 6 decimals), X, X_ctl
Writes (in tests/fixtures/)
  onnx/sequence/bpnet_control_torchscript.onnx  bpnet-lite 1.1.0's `BPNet(n_filters=8, n_layers=2, n_outputs=2,
                                                n_control_tracks=2, trimming=40)` with those weights, in FLOAT64
                                                (so the file holds the fixture's weights exactly): graph inputs "X"
                                                [N, 4, 100] and "X_ctl" [N, 2, 100], outputs "profile" [N, 2, 20] and
                                                "counts" [N, 1] (torch.onnx.export(dynamo=False), opset 17)
  onnx/sequence/bpnet_control_dynamo.onnx       the same model, torch.onnx.export(dynamo=True), opset 18; every
                                                node's `metadata_props` (stack traces, export bookkeeping) removed
                                                before writing, nothing else
  onnx/sequence/bpnet_control_{torchscript,dynamo}_f32.onnx
                                                the same exports of the model in FLOAT32 (weights rounded to float32):
                                                onnxruntime's CPU provider has no float64 Conv, so these are the files
                                                it runs; their nodes are the float64 files' nodes (checked)
  bpnet_control_onnx.json                       the manifest below

`forward(X, X_ctl)` (`bpnetlite/bpnet.py`) exports to: the body's Conv/Relu/Add; `torch.cat([X, X_ctl], dim=1)`
(Concat of computed data and the second graph input on the channels); the profile head's Conv and Slice; the count
head's `X[:, :, 3:97]` mean (Slice, ReduceMean), `X_ctl[:, :, 3:97]` (Slice), `torch.sum(..., dim=(1, 2))`
(ReduceSum over two non-batch axes), `unsqueeze(-1)` (Unsqueeze), `torch.log(X_ctl + 1)` (Add of a constant, Log),
`torch.cat(..., dim=-1)` (Concat on the features) and the Linear layer (Gemm or MatMul + Add) and a Reshape.

JSON
  generator, versions, fixture ("bpnet_control_deep_lift_shap.json")
  onnxruntime: {file stem: {"profile": T, "counts": T}}  onnxruntime's float32 outputs of the file's `_f32` twin on the
      fixture's X and X_ctl (the whole batch, N = 2; floats as the shortest float32 repr)
  torch_f64: {"profile": T, "counts": T}                  PyTorch's float64 outputs on the same inputs
  nodes: {file stem: {op_type: count}}                    what each file is made of
A tensor T is {"shape": [...], "data": [flat, C order]}.

The script checks: onnxruntime equals PyTorch in float32 within 1e-5 relative (to the largest output), and PyTorch's
float64 outputs equal the JSON fixture's "profile_logits" and "counts" within 1e-12.
"""
import argparse
import collections
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)

CONFIG = dict(n_filters=8, n_layers=2, n_outputs=2, n_control_tracks=2, trimming=40)


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


def export(model, x, x_ctl, path, dynamo):
    kw = dict(input_names=["X", "X_ctl"], output_names=["profile", "counts"])
    if dynamo:
        batch = torch.export.Dim("batch")
        torch.onnx.export(model, (x, x_ctl), path, dynamo=True, opset_version=18, external_data=False,
                          dynamic_shapes=({0: batch}, {0: batch}), **kw)
        strip_metadata(path)
    else:
        torch.onnx.export(model, (x, x_ctl), path, dynamo=False, opset_version=17,
                          dynamic_axes={"X": {0: "batch"}, "X_ctl": {0: "batch"}}, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")
    seq_dir = os.path.join(out, "onnx", "sequence")
    os.makedirs(seq_dir, exist_ok=True)

    import bpnetlite
    import onnx
    import onnxruntime as ort
    from bpnetlite.bpnet import BPNet

    with open(os.path.join(root, "tests", "fixtures", "bpnet_control_deep_lift_shap.json")) as f:
        fx = json.load(f)
    state = {k: torch.tensor(np.array(v["data"], dtype=np.float64).reshape(v["shape"]))
             for k, v in fx["weights"].items()}
    model = BPNet(**CONFIG, verbose=False).double()
    model.load_state_dict(state)
    model = model.eval()

    n, length = len(fx["x"]), fx["config"]["length"]
    x = np.zeros((n, 4, length))
    for s, bases in enumerate(fx["x"]):
        x[s, bases, np.arange(length)] = 1.0
    x_ctl = np.array(fx["x_ctl"]["data"], dtype=np.float64).reshape(fx["x_ctl"]["shape"])
    X, X_ctl = torch.tensor(x), torch.tensor(x_ctl)
    with torch.no_grad():
        profile, counts = model(X, X_ctl)
    want_logits = np.array(fx["profile_logits"]["data"]).reshape(fx["profile_logits"]["shape"])
    assert np.abs(profile.numpy() - want_logits).max() <= 1e-12 * np.abs(want_logits).max()
    assert np.abs(counts[:, 0].numpy() - np.array(fx["counts"])).max() <= 1e-12 * np.abs(fx["counts"]).max()

    model32 = BPNet(**CONFIG, verbose=False)
    model32.load_state_dict(state)
    model32 = model32.float().eval()
    x32, x_ctl32 = torch.tensor(x, dtype=torch.float32), torch.tensor(x_ctl, dtype=torch.float32)
    with torch.no_grad():
        profile32, counts32 = model32(x32, x_ctl32)
    onnxruntime_out, nodes = {}, {}
    for stem, dynamo in [("bpnet_control_torchscript", False), ("bpnet_control_dynamo", True)]:
        path = os.path.join(seq_dir, stem + ".onnx")
        export(model, X, X_ctl, path, dynamo)
        path32 = os.path.join(seq_dir, stem + "_f32.onnx")
        export(model32, x32, x_ctl32, path32, dynamo)
        ops64 = [nd.op_type for nd in onnx.load(path).graph.node]
        ops32 = [nd.op_type for nd in onnx.load(path32).graph.node]
        assert ops64 == ops32, (stem, ops64, ops32)
        sess = ort.InferenceSession(path32, providers=["CPUExecutionProvider"])
        got_p, got_c = sess.run(["profile", "counts"], {"X": x.astype(np.float32), "X_ctl": x_ctl.astype(np.float32)})
        for got, want in [(got_p, profile32.numpy()), (got_c, counts32.numpy())]:
            assert got.shape == want.shape, (stem, got.shape, want.shape)
            dev = np.abs(got - want).max() / np.abs(want).max()
            assert dev < 1e-5, (stem, dev)
        onnxruntime_out[stem] = {"profile": tensor(got_p, f32=True), "counts": tensor(got_c, f32=True)}
        nodes[stem] = dict(sorted(collections.Counter(ops64).items()))
        print(stem, os.path.getsize(path), os.path.getsize(path32), "bytes", nodes[stem])

    manifest = {
        "generator": "tools/gen_bpnet_control_onnx.py",
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "bpnetlite_version": bpnetlite.__version__,
        "fixture": "bpnet_control_deep_lift_shap.json",
        "onnxruntime": onnxruntime_out,
        "torch_f64": {"profile": tensor(profile.numpy()), "counts": tensor(counts.numpy())},
        "nodes": nodes,
    }
    with open(os.path.join(out, "bpnet_control_onnx.json"), "w") as f:
        json.dump(manifest, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
