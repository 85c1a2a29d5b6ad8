#!/usr/bin/env python3
"""Generate tests/fixtures/onnx/patterns/: small ONNX models, written node by node with onnx.helper, that reproduce
graph patterns of published models which PyTorch's exporters never write, each with onnxruntime's outputs on 3 fixed
inputs. tests/suite/onnx_corpus.rs loads them like the exported corpus (same manifest entry format).

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install onnx onnxruntime numpy
    ~/venv/bin/python tools/gen_onnx_patterns.py             # writes tests/fixtures/onnx/patterns/ (a few seconds)
    ~/venv/bin/python tools/gen_onnx_patterns.py --out DIR   # write somewhere else

Deterministic (fixed seeds, onnxruntime with one thread); the versions are written into the manifest.

Patterns
--------
* nhwc_resnet: a channels-last ResNet block as TensorFlow converters (tf2onnx) write Yahoo's open_nsfw ResNet-50: the
  graph input is NHWC [N, 12, 12, 3]; an input normalisation Sub by a [1, 1, 1, 3] constant on the NHWC input; a
  Transpose to NCHW before every Conv and MaxPool, and back to NHWC after; batch norms written out as Mul and Add by
  [1, 1, 1, C] constants between a Transpose(0, 2, 3, 1) and a Transpose(0, 3, 1, 2); a zero Pad of H and W in NHWC
  before a stride-2 Conv; the residual Add and its Relu in NHWC; a Pad of -inf (opset 11+: the value as an input)
  before a MaxPool; ReduceMean over axes [1, 2] of the NHWC tensor (keepdims 1) and Squeeze as the global pool;
  MatMul + Add; Softmax. Opset 13.
* coreml_squeezenet: SqueezeNet layers as onnxmltools converts Apple's CoreML SqueezeNet (itself converted from
  Caffe): Pad nodes with value -3.4028234663852886e+38 (-FLT_MAX, an attribute at opset 7) before MaxPool nodes with
  auto_pad VALID, padding at the end only ([0, 0, 0, 0, 0, 0, 1, 1]: Caffe's ceil-mode pooling), at the beginning of
  one axis and the end of the other, and not at all (a no-op Pad); a Fire module (squeeze 1x1, expand 1x1 and 3x3,
  Concat); GlobalAveragePool, Flatten, Softmax. Opset 7, input NCHW [N, 3, 33, 33].

Inputs: u ~ U(-1, 1) rounded to 2 decimals (float64 in the generator; cast to float32 they are exactly what was fed).

Manifest (patterns/manifest.json): {"generator", "versions", "entries": [{"name", "file", "input_name",
"output_name", "input_shape" (per sample), "ops" {op_type: count}, "opset", "inputs" {"file", "shape", "dtype"},
"logits" {"shape", "data"}, "notes"}]}; paths are relative to tests/fixtures/onnx/.
"""
import argparse
import collections
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

GENERATOR = "tools/gen_onnx_patterns.py"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "onnx")
N_SAMPLES = 3
FLT_MAX = float(np.finfo(np.float32).max)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Graph:
    """A graph under construction: nodes, initializers, fresh names."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.inits = []
        self.count = collections.Counter()

    def name(self, base):
        self.count[base] += 1
        return f"{base}_{self.count[base]}"

    def const(self, base, array, dtype=np.float32):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=dtype), name))
        return name

    def weight(self, base, shape, scale):
        return self.const(base, self.rng.normal(0.0, scale, size=shape))

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, pads=None, bias=True):
        w = self.weight("w", (cout, cin, k, k), (2.0 / (cin * k * k)) ** 0.5)
        inputs = [x, w] + ([self.weight("b", (cout,), 0.1)] if bias else [])
        attrs = {"kernel_shape": [k, k], "strides": [stride, stride]}
        if pads is not None:
            attrs["pads"] = pads
        return self.node("Conv", inputs, **attrs)

    def nhwc_batch_norm(self, x, c):
        """A batch norm written out on an NHWC tensor: Mul and Add by [1, 1, 1, C] constants."""
        scale = self.const("scale", self.rng.uniform(0.5, 1.5, size=(1, 1, 1, c)))
        shift = self.const("shift", self.rng.normal(0.0, 0.2, size=(1, 1, 1, c)))
        return self.node("Add", [self.node("Mul", [x, scale]), shift])


def to_nhwc(g, x):
    return g.node("Transpose", [x], perm=[0, 2, 3, 1])


def to_nchw(g, x):
    return g.node("Transpose", [x], perm=[0, 3, 1, 2])


def nhwc_resnet(rng):
    g = Graph(rng)
    x = "input"
    mean = g.const("mean", rng.uniform(-0.2, 0.2, size=(1, 1, 1, 3)))
    h = g.node("Sub", [x, mean])
    # stem: conv, batch norm in NHWC, relu in NHWC
    h = g.conv(to_nchw(g, h), 3, 8, 3, pads=[1, 1, 1, 1])
    h = g.node("Relu", [g.nhwc_batch_norm(to_nhwc(g, h), 8)])
    # a zero Pad of H and W in NHWC before a stride-2 conv without padding
    pads = g.const("pads", [0, 1, 1, 0, 0, 1, 1, 0], dtype=np.int64)
    h = g.node("Pad", [h, pads])
    h = g.conv(to_nchw(g, h), 8, 8, 3, stride=2)  # 12 → 6
    h = g.nhwc_batch_norm(to_nhwc(g, h), 8)
    shortcut = g.node("Relu", [h])
    # residual block: two convs, batch norms in NHWC, the sum and its relu in NHWC
    r = g.conv(to_nchw(g, shortcut), 8, 8, 3, pads=[1, 1, 1, 1], bias=False)
    r = g.node("Relu", [g.nhwc_batch_norm(to_nhwc(g, r), 8)])
    r = g.conv(to_nchw(g, r), 8, 8, 3, pads=[1, 1, 1, 1], bias=False)
    r = g.nhwc_batch_norm(to_nhwc(g, r), 8)
    h = g.node("Relu", [g.node("Add", [shortcut, r])])
    # max pooling behind a Pad of -inf (the value an input, as at opset 11+)
    pads = g.const("pads", [0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int64)
    neg_inf = g.const("neg_inf", np.float32(-np.inf))
    h = g.node("Pad", [to_nchw(g, h), pads, neg_inf], mode="constant")
    h = to_nhwc(g, g.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2]))  # 6 (+1) → 3
    # global average pool as a mean over the NHWC spatial axes, then the classifier
    h = g.node("ReduceMean", [h], axes=[1, 2], keepdims=1)
    h = g.node("Squeeze", [h, g.const("axes", [1, 2], dtype=np.int64)])
    logits = g.node("Add", [g.node("MatMul", [h, g.weight("fc", (8, 5), 0.5)]), g.weight("fc_b", (5,), 0.1)])
    out = g.node("Softmax", [logits], axis=-1)
    return g, [12, 12, 3], out, 13


def coreml_squeezenet(rng):
    g = Graph(rng)
    x = "input"

    def pooled(h, pads, stride=2):
        padded = g.node("Pad", [h], pads=pads, value=-FLT_MAX, mode="constant")
        return g.node("MaxPool", [padded], kernel_shape=[3, 3], strides=[stride, stride], auto_pad="VALID")

    h = g.node("Relu", [g.conv(x, 3, 8, 3, stride=2, pads=[0, 0, 0, 0])])  # 33 → 16
    h = pooled(h, [0, 0, 0, 0, 0, 0, 1, 1])  # 16 (+1) → 8, Caffe's ceil mode
    # a Fire module
    s = g.node("Relu", [g.conv(h, 8, 4, 1, pads=[0, 0, 0, 0])])
    e1 = g.node("Relu", [g.conv(s, 4, 6, 1, pads=[0, 0, 0, 0])])
    e3 = g.node("Relu", [g.conv(s, 4, 6, 3, pads=[1, 1, 1, 1])])
    h = g.node("Concat", [e1, e3], axis=1)
    h = pooled(h, [0, 0, 1, 0, 0, 0, 0, 1])  # padding at the top, and at the right: 8 (+1) → 4
    h = pooled(h, [0, 0, 0, 0, 0, 0, 0, 0], stride=1)  # a no-op Pad: 4 → 2
    h = g.node("Relu", [g.conv(h, 12, 5, 1, pads=[0, 0, 0, 0])])
    h = g.node("Flatten", [g.node("GlobalAveragePool", [h])], axis=1)
    out = g.node("Softmax", [h], axis=1)
    return g, [3, 33, 33], out, 7


PATTERNS = {
    "nhwc_resnet": (nhwc_resnet, 301, "a channels-last ResNet block as tf2onnx writes open_nsfw's ResNet-50"),
    "coreml_squeezenet": (coreml_squeezenet, 302, "SqueezeNet layers as onnxmltools converts CoreML's SqueezeNet"),
}


def run_ort(path, x32):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x32})[0]


def tensor_json(a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    check(bool(np.all(np.isfinite(a))), "refusing to write a non-finite tensor")
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def generate(name, out_dir):
    build, seed, notes = PATTERNS[name]
    rng = np.random.default_rng(seed)
    g, shape, out, opset = build(rng)
    graph = helper.make_graph(
        g.nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch"] + shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", "classes"])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=GENERATOR)
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    rel = f"patterns/{name}.onnx"
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.save(model, path)
    check(os.path.getsize(path) < 100_000, f"{name}: {os.path.getsize(path)} bytes")
    x64 = np.round(rng.uniform(-1.0, 1.0, size=(N_SAMPLES, *shape)), 2)
    x32 = x64.astype(np.float32)
    check(np.array_equal(x32.astype(np.float64), x64.astype(np.float32).astype(np.float64)), "float32 round trip")
    y = run_ort(path, x32)
    check(y.dtype == np.float32 and bool(np.all(np.isfinite(y))), f"{name}: output")
    spread = float(np.max(np.abs(y[0] - y[1])))
    check(spread > 1e-3, f"{name}: the samples' outputs do not differ ({spread})")
    inputs = f"patterns/{name}.f32"
    with open(os.path.join(out_dir, inputs), "wb") as f:
        f.write(np.ascontiguousarray(x32.astype("<f4")).tobytes())
    ops = collections.Counter(n.op_type for n in g.nodes)
    print(f"{name}: {os.path.getsize(path)} B, opset {opset}, {dict(sorted(ops.items()))}, argmax {y.argmax(1)}")
    return {
        "name": name, "file": rel, "input_name": "input", "output_name": out, "input_shape": shape,
        "ops": dict(sorted(ops.items())), "opset": opset,
        "inputs": {"file": inputs, "shape": list(x32.shape), "dtype": "float32-le"},
        "logits": tensor_json(y), "notes": notes,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures/onnx)")
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out)
    versions = {"onnx": onnx.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
                "python": sys.version.split()[0]}
    entries = [generate(name, out_dir) for name in PATTERNS]
    manifest = {"generator": GENERATOR, "versions": versions, "entries": entries}
    path = os.path.join(out_dir, "patterns", "manifest.json")
    with open(path, "w") as f:
        f.write(json.dumps(manifest, separators=(",", ":"), allow_nan=False) + "\n")
    print(f"wrote {path}: {len(entries)} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
