#!/usr/bin/env python3
"""Generate the ConvTranspose2d reference fixtures from the real libraries:

* tests/fixtures/convtranspose.json
  - "layer_cases": torch.nn.ConvTranspose2d's forward pass and input gradient (float64) for
    several configurations (stride 2, padding 1, output_padding 1, dilation 2, groups 2, no
    bias, asymmetric pads written as a crop of the unpadded output, as ONNX "pads" allow);
  - "networks": two small networks conv -> relu -> ConvTranspose2d -> relu -> conv -> relu ->
    flatten -> dense, explained by zennit (float64; Epsilon, Gamma, ZPlus uniformly and the
    EpsilonGammaBox and EpsilonPlus composites; one-hot output relevance) and by captum's
    DeepLift (zero baseline and a non-zero shared baseline);
  - "onnx": for tests/fixtures/onnx/convtranspose/*.onnx, the network's parameters in the
    same format, the float32 inputs and onnxruntime's float32 outputs.
* tests/fixtures/onnx/convtranspose/{torchscript,dynamo}.onnx: a tiny conv-deconv network
  (Conv, Relu, ConvTranspose + BatchNormalization, Relu, ConvTranspose with groups and
  output_padding, Relu, Flatten, Linear) exported by torch.onnx with both exporters, opset 14
  for the TorchScript one (the exporter of the published model), weights inline;
  tests/fixtures/onnx/convtranspose/{same_upper,same_lower,output_shape,output_shape_padding}.onnx:
  single ConvTranspose nodes (onnx.helper) whose padding follows from auto_pad or output_shape,
  with onnxruntime's outputs ("onnx_padding").

How to run (from the repository root):

    /work/venv/bin/python tools/gen_convtranspose_fixtures.py

float64 (the ONNX model in float32), one thread, fixed seeds: deterministic for given
versions (written into the file).

Format: tensors {"shape": [...], "data": [flat C order]}. Layers: {"type": "conv2d" |
"convtranspose2d", "weight", "bias" (or null), "stride", "pads" [top, left, bottom, right],
"dilation", "groups", "output_padding" (transposed only)}, {"type": "relu"}, {"type":
"flatten"}, {"type": "dense", "weight", "bias"}, {"type": "batchnorm", "mean", "var",
"weight", "bias", "eps"}.
"""
import json
import os

import numpy as np
import torch
import zennit
from zennit.attribution import Gradient
from zennit.composites import EpsilonGammaBox, EpsilonPlus, LayerMapComposite, layer_map_base
from zennit.rules import Epsilon, Gamma, ZPlus
from zennit import types as ztypes
import captum
from captum.attr import DeepLift
import onnx
import onnxruntime

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")


def tj(t):
    t = t.detach().cpu().to(torch.float64).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def layer_json(m):
    if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        p = list(m.padding)
        d = {
            "type": "conv2d" if isinstance(m, torch.nn.Conv2d) else "convtranspose2d",
            "weight": tj(m.weight),
            "bias": None if m.bias is None else tj(m.bias),
            "stride": list(m.stride),
            "pads": [p[0], p[1], p[0], p[1]],
            "dilation": list(m.dilation),
            "groups": m.groups,
        }
        if isinstance(m, torch.nn.ConvTranspose2d):
            d["output_padding"] = list(m.output_padding)
        return d
    if isinstance(m, torch.nn.ReLU):
        return {"type": "relu"}
    if isinstance(m, torch.nn.Flatten):
        return {"type": "flatten"}
    if isinstance(m, torch.nn.Linear):
        return {"type": "dense", "weight": tj(m.weight), "bias": tj(m.bias)}
    if isinstance(m, torch.nn.BatchNorm2d):
        return {
            "type": "batchnorm",
            "mean": tj(m.running_mean),
            "var": tj(m.running_var),
            "weight": tj(m.weight),
            "bias": tj(m.bias),
            "eps": m.eps,
        }
    raise TypeError(m)


# ---------------------------------------------------------------- (a) the layer alone
LAYER_CONFIGS = [
    # name, in, out, kernel, stride, padding, output_padding, dilation, groups, bias, crop
    ("plain", 3, 2, (3, 3), 1, 0, 0, 1, 1, True, None),
    ("stride2", 3, 4, (3, 3), 2, 0, 0, 1, 1, True, None),
    ("stride2_pad1_outpad1", 3, 4, (3, 3), 2, 1, 1, 1, 1, True, None),
    ("dilation2", 2, 3, (3, 2), 1, 1, 0, 2, 1, True, None),
    ("groups2", 4, 6, (2, 3), 2, 0, 1, 1, 2, True, None),
    ("no_bias", 3, 2, (4, 4), 2, 1, 0, 1, 1, False, None),
    ("stride3_dil2_groups2", 4, 4, (3, 3), (3, 2), (1, 2), (2, 1), 2, 2, True, None),
    ("depthwise_k1", 3, 3, (1, 1), 2, 0, 1, 1, 3, True, None),
    # ONNX pads [top, left, bottom, right] = [1, 0, 0, 2]: unpadded output cropped
    ("asymmetric_pads", 2, 3, (3, 3), 2, 0, 1, 1, 1, True, (1, 0, 0, 2)),
]


def layer_cases():
    gen = torch.Generator().manual_seed(7)
    cases = []
    for name, cin, cout, k, s, p, op, d, g, bias, crop in LAYER_CONFIGS:
        m = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op,
                                     dilation=d, groups=g, bias=bias)
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
            if bias:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen))
        x = torch.randn((2, cin, 4, 5), generator=gen, requires_grad=True)
        y = m(x)
        if crop is not None:
            t, l, b, r = crop
            y = y[:, :, t:y.shape[2] - b, l:y.shape[3] - r]
        gout = torch.randn(y.shape, generator=gen)
        (dx,) = torch.autograd.grad(y, x, gout)
        lj = layer_json(m)
        if crop is not None:
            lj["pads"] = list(crop)
        cases.append({"name": name, "layer": lj, "x": tj(x), "y": tj(y), "g": tj(gout), "dx": tj(dx)})
    return cases


# ---------------------------------------------------------------- (b) networks, zennit and captum
def build(kind, gen):
    if kind == "a":
        mods = [
            torch.nn.Conv2d(2, 3, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(4, 2, 3, stride=2),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 3),
        ]
    else:
        mods = [
            torch.nn.Conv2d(2, 4, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(4, 4, 2, stride=2, dilation=2, groups=2, bias=False),
            torch.nn.ReLU(),
            torch.nn.Conv2d(4, 2, 3, stride=3),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(2 * 4 * 4, 3),
        ]
    model = torch.nn.Sequential(*mods).eval()
    with torch.no_grad():
        for m in model:
            if hasattr(m, "weight"):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.5)
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return model


def zennit_relevance(model, composite, x, target, classes):
    with Gradient(model=model, composite=composite) as attributor:
        out, rel = attributor(x, torch.eye(classes)[target])
    return rel


def uniform(rule):
    return LayerMapComposite(layer_map=layer_map_base() + [(ztypes.Linear, rule)])


def network_fixture(kind, seed):
    gen = torch.Generator().manual_seed(seed)
    model = build(kind, gen)
    x = torch.randn((3, 2, 6, 6), generator=gen)
    out = model(x)
    target = [0, 2, 1]
    low, high = -3.0 * torch.ones_like(x), 3.0 * torch.ones_like(x)
    cases = []
    for name, comp in [
        ("epsilon", uniform(Epsilon())),
        ("gamma", uniform(Gamma())),
        ("zplus", uniform(ZPlus())),
        ("epsilon_gamma_box", EpsilonGammaBox(low=low, high=high)),
        ("epsilon_plus", EpsilonPlus()),
    ]:
        rel = zennit_relevance(model, comp, x.clone().requires_grad_(True), target, out.shape[1])
        cases.append({"name": name, "relevance": tj(rel)})
    baseline = 0.3 * torch.randn((1, 2, 6, 6), generator=gen)
    deeplift = []
    for bname, b in [("zero", torch.zeros_like(x)), ("shared", baseline.expand_as(x))]:
        dl = DeepLift(model)
        attr, delta = dl.attribute(x, baselines=b, target=target, return_convergence_delta=True)
        deeplift.append({
            "name": bname,
            "baseline": tj(baseline if bname == "shared" else torch.zeros((1, 2, 6, 6))),
            "attribution": tj(attr),
            "delta": tj(delta),
        })
    return {
        "name": kind,
        "input_shape": [2, 6, 6],
        "layers": [layer_json(m) for m in model],
        "input": tj(x),
        "output": tj(out),
        "target": target,
        "low": tj(low),
        "high": tj(high),
        "cases": cases,
        "deeplift": deeplift,
    }


# ---------------------------------------------------------------- (c) ONNX
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.up1 = torch.nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.bn = torch.nn.BatchNorm2d(4)
        self.up2 = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.fc = torch.nn.Linear(2 * 16 * 16, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = torch.relu(self.bn(self.up1(x)))
        x = torch.relu(self.up2(x))
        return self.fc(torch.flatten(x, 1))

    def layers(self):
        return [self.conv, torch.nn.ReLU(), self.up1, self.bn, torch.nn.ReLU(), self.up2,
                torch.nn.ReLU(), torch.nn.Flatten(), self.fc]


def onnx_fixture():
    torch.set_default_dtype(torch.float32)
    gen = torch.Generator().manual_seed(11)
    model = Tiny().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
        model.bn.running_mean.copy_(torch.randn(4, generator=gen) * 0.2)
        model.bn.running_var.copy_(torch.rand(4, generator=gen) + 0.5)
    x = torch.randn((2, 1, 4, 4), generator=gen)
    d = os.path.join(FIX, "onnx", "convtranspose")
    os.makedirs(d, exist_ok=True)
    files = []
    for exporter in ["torchscript", "dynamo"]:
        path = os.path.join(d, f"{exporter}.onnx")
        if exporter == "torchscript":
            torch.onnx.export(model, (x,), path, dynamo=False, opset_version=14,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        else:
            torch.onnx.export(model, (x[:1],), path, dynamo=True, external_data=False)  # batch 1
        onnx.checker.check_model(onnx.load(path))
        sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        outs = []
        for k in range(x.shape[0]):
            xi = x[k:k + 1]
            (y,) = sess.run(None, {name: xi.numpy()})
            outs.append(torch.from_numpy(y))
        y = torch.cat(outs)
        files.append({"file": f"convtranspose/{exporter}.onnx", "ops": ops, "onnxruntime": tj(y)})
    torch.set_default_dtype(torch.float64)
    with torch.no_grad():
        torch_out = model(x)
    return {
        "input_shape": [1, 4, 4],
        "layers": [layer_json(m) for m in model.layers()],
        "input": tj(x),
        "torch_output": tj(torch_out),
        "files": files,
    }


def padding_fixtures():
    """Single ConvTranspose nodes written with onnx.helper whose padding the importer must
    compute (auto_pad SAME_UPPER / SAME_LOWER, output_shape), with onnxruntime's outputs."""
    from onnx import helper, TensorProto, numpy_helper
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    d = os.path.join(FIX, "onnx", "convtranspose")
    cases = []
    for name, attrs in [
        ("same_upper", dict(strides=[2, 2], auto_pad="SAME_UPPER")),
        ("same_lower", dict(strides=[2, 2], auto_pad="SAME_LOWER")),
        ("output_shape", dict(strides=[2, 3], output_shape=[6, 10])),
        ("output_shape_padding", dict(strides=[2, 2], output_shape=[7, 8], output_padding=[1, 0])),
    ]:
        node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="deconv", **attrs)
        graph = helper.make_graph(
            [node], name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(w, "W")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        model.ir_version = 8
        path = os.path.join(d, f"{name}.onnx")
        onnx.save(model, path)
        sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {"x": x})
        cases.append({"file": f"convtranspose/{name}.onnx", "onnxruntime": tj(torch.from_numpy(y))})
    return {"input": tj(torch.from_numpy(x)), "files": cases}


def main():
    fx = {
        "generator": "tools/gen_convtranspose_fixtures.py",
        "torch_version": torch.__version__,
        "zennit_version": getattr(zennit, "__version__", "0.5.1"),
        "captum_version": captum.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "layer_cases": layer_cases(),
        "networks": [network_fixture("a", 1), network_fixture("b", 2)],
        "onnx": onnx_fixture(),
        "onnx_padding": padding_fixtures(),
    }
    with open(os.path.join(FIX, "convtranspose.json"), "w") as f:
        json.dump(fx, f)
    print("wrote tests/fixtures/convtranspose.json")


if __name__ == "__main__":
    main()
