#!/usr/bin/env python3
"""Generate the 1-D (sequence) ONNX fixture: a small Conv1d network on one-hot DNA, exported by
both PyTorch exporters, with onnxruntime's outputs and captum's DeepLIFT attributions.

How to run (from the repository root):

    ~/venv/bin/pip install torch onnx onnxruntime onnxscript captum numpy
    ~/venv/bin/python tools/gen_sequence_fixtures.py            # writes the files below
    ~/venv/bin/python tools/gen_sequence_fixtures.py --out DIR  # write somewhere else

Writes
  tests/fixtures/onnx/sequence/conv1d_torchscript.onnx   torch.onnx.export(dynamo=False, opset 17)
  tests/fixtures/onnx/sequence/conv1d_dynamo.onnx        torch.onnx.export(dynamo=True), weights inline
  tests/fixtures/sequence_conv1d.json

The network ([N, 4, 40] -> [N, 3]) holds what genomics models use along the length axis: Conv1d with
"same" padding (auto_pad SAME_UPPER in the TorchScript file), dilation and groups, a residual sum, Conv1d -> MaxPool1d, Softplus, AvgPool1d with
padding, a crop (x[:, :, 2:-2], a Slice), a strided Conv1d, a global average pool and a Linear head.
Weights are drawn in float32 (seed 0) and the float64 reference runs use the same values, so the
Rust side loads the ONNX file in f64 and meets:

  * onnxruntime's float32 outputs of each file ("ort_output", float32 tolerance);
  * torch's float64 outputs on the same weights ("output");
  * captum 0.9.0's DeepLift (eps 1e-10) against one one-hot reference per sample and DeepLiftShap
    against K = 3 one-hot references, in float64. Checks here: captum's convergence delta < 1e-10 in
    every case (its max-pool cross-max rule was applied: a Conv1d, not a ReLU, feeds the pool, see
    captum issue #1104, and for captum only a copying module sits between the pool and the Softplus
    that reads it, without which captum drops the pool's multiplier too: delta ~1e-4), no ReLU pre-activation within 1e-9 of 0, no max-pool window whose two
    largest entries are within 1e-9 (on inputs and references).

JSON format: tensors {"shape": [...], "data": [flat C order]}; fields generator, torch_version,
captum_version, onnxruntime_version, input [N, 4, 40], target [N], output [N, 3] (float64 torch),
ort_output {file: [N, 3]}, cases [{name, captum, baselines, attribution, delta}] with delta =
f_c(x) - mean_k f_c(ref_k) - sum(attribution) (minus captum's convergence delta, averaged over K).
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)


class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 7, padding="same")
        self.relu1 = nn.ReLU()
        # explicit padding: the TorchScript exporter writes padding="same" as auto_pad
        # SAME_UPPER, which onnxruntime 1.32 refuses with a dilation
        self.conv2 = nn.Conv1d(8, 8, 3, dilation=2, padding=2, groups=2)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv1d(8, 6, 5)
        self.pool = nn.MaxPool1d(2)
        self.soft = nn.Softplus()
        self.avg = nn.AvgPool1d(3, stride=1, padding=1)
        self.conv4 = nn.Conv1d(6, 4, 3, stride=2)
        self.relu4 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        h = h + self.relu2(self.conv2(h))
        h = self.soft(self.pool(self.conv3(h)))
        h = self.avg(h)[:, :, 2:-2]
        h = self.relu4(self.conv4(h))
        return self.fc(torch.flatten(self.gap(h), 1))


class Clone(nn.Module):
    """A copy (nn.Identity returns the same tensor and does not help): between a max-pool and the
    Softplus it feeds, so that captum's hooks keep the pool's cross-max multiplier."""

    def forward(self, x):
        return x.clone()


def one_hot(rng, n, length):
    x = np.zeros((n, 4, length))
    idx = rng.integers(0, 4, size=(n, length))
    for s in range(n):
        x[s, idx[s], np.arange(length)] = 1.0
    return x


def tensor(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def check_branches(model, xs):
    """No ReLU pre-activation near 0, no near-tie in a max-pool window."""
    acts = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: acts.setdefault(k, []).append(i[0].detach()))
             for k, m in [("relu", model.relu1), ("relu", model.relu2), ("relu", model.relu4), ("pool", model.pool)]]
    with torch.no_grad():
        model(xs)
    for h in hooks:
        h.remove()
    for z in acts["relu"]:
        assert z.abs().min() > 1e-9, "a ReLU input near 0"
    for z in acts["pool"]:
        w = z[..., : z.shape[-1] // 2 * 2].reshape(*z.shape[:-1], -1, 2)
        assert (w[..., 0] - w[..., 1]).abs().min() > 1e-9, "a max-pool near-tie"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")
    os.makedirs(os.path.join(out, "onnx", "sequence"), exist_ok=True)

    import captum
    import onnxruntime as ort
    from captum.attr import DeepLift, DeepLiftShap

    torch.manual_seed(0)
    model = Seq().eval()
    rng = np.random.default_rng(0)
    n, length = 2, 40
    x = one_hot(rng, n, length)
    refs_per_sample = one_hot(rng, n, length)
    refs_k = one_hot(rng, 3, length)
    target = [0, 2]

    # exports (float32)
    x32 = torch.tensor(x, dtype=torch.float32)
    files = {}
    ts = os.path.join(out, "onnx", "sequence", "conv1d_torchscript.onnx")
    torch.onnx.export(model, (x32,), ts, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}})
    files["conv1d_torchscript"] = ts
    dy = os.path.join(out, "onnx", "sequence", "conv1d_dynamo.onnx")
    torch.onnx.export(model, (x32,), dy, dynamo=True, external_data=False)
    # the dynamo exporter writes each node's Python stack into metadata: drop it (4x smaller)
    import onnx
    proto = onnx.load(dy)
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(proto, dy)
    files["conv1d_dynamo"] = dy
    ort_out = {}
    for name, path in files.items():
        s = ort.InferenceSession(path)
        ort_out[name] = tensor(s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0])

    # float64 references on the same weights
    m64 = Seq().eval()
    m64.load_state_dict(model.state_dict())
    m64 = m64.double()
    xt = torch.tensor(x)
    check_branches(m64, torch.cat([xt, torch.tensor(refs_per_sample), torch.tensor(refs_k)]))
    with torch.no_grad():
        output = m64(xt).numpy()

    # captum 0.9.0 loses the max-pool's multiplier when a hooked nonlinearity reads the pool's
    # output directly (delta ~1e-4 here; the mirror image of its issue #1104): a copy in between
    m64.soft = nn.Sequential(Clone(), m64.soft)
    cases = []
    dl = DeepLift(m64, eps=1e-10)
    attr, conv = dl.attribute(xt, baselines=torch.tensor(refs_per_sample), target=target,
                              return_convergence_delta=True)
    assert conv.abs().max() < 1e-10, conv
    cases.append({"name": "deeplift_per_sample", "captum": "DeepLift", "baselines": tensor(refs_per_sample),
                  "attribution": tensor(attr.detach().numpy()), "delta": tensor(-conv.detach().numpy())})
    shap = DeepLiftShap(m64)
    attr, conv = shap.attribute(xt, baselines=torch.tensor(refs_k), target=target, return_convergence_delta=True)
    assert conv.abs().max() < 1e-10, conv
    delta = -conv.detach().numpy().reshape(n, 3).mean(axis=1)
    cases.append({"name": "deeplift_shap_k3", "captum": "DeepLiftShap", "baselines": tensor(refs_k),
                  "attribution": tensor(attr.detach().numpy()), "delta": tensor(delta)})
    for c in cases:
        assert np.abs(np.array(c["attribution"]["data"])).max() > 0

    fx = {
        "generator": "tools/gen_sequence_fixtures.py",
        "torch_version": torch.__version__,
        "captum_version": captum.__version__,
        "onnxruntime_version": ort.__version__,
        "input": tensor(x),
        "target": target,
        "output": tensor(output),
        "ort_output": ort_out,
        "cases": cases,
    }
    with open(os.path.join(out, "sequence_conv1d.json"), "w") as f:
        json.dump(fx, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", list(files), "and sequence_conv1d.json")


if __name__ == "__main__":
    main()
