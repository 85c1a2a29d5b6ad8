#!/usr/bin/env python3
"""Generate tests/fixtures/transformers/patterns/: layer norms and RMS norms written out of elementary operators, as
older exporters write them (issue #21), and a few near misses the importer must refuse.

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch onnx onnxruntime numpy 'transformers<5'
    ~/venv/bin/python tools/gen_transformer_patterns.py             # writes tests/fixtures/transformers/patterns/
    ~/venv/bin/python tools/gen_transformer_patterns.py --out DIR   # write somewhere else

Every file is a torch module exported by the TorchScript exporter (torch.onnx.export(dynamo=False)), so the nodes are
the exporter's own: the network is

    x [N, 4, 6] -> Linear(6, 8) -> <norm> -> Linear(8, 3) -> flatten(1) -> y [N, 12]

(Linear on a 3-D tensor exports as MatMul + Add), float64, with a float32 twin (*.f32.onnx, the same module after
.float()). Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.2^2), norm weights ~ U(0.5, 1.5), norm biases ~ N(0, 0.2^2),
input ~ N(0, 1), N = 2; fixed seed, one CPU thread, deterministic.

Variants (the norm; "legacy" = the exporter's own decomposition of the op, at opset 14 where LayerNormalization does
not exist yet):
  ln_opset14            nn.LayerNorm(8), opset 14: ReduceMean, Sub, Pow(2), ReduceMean, Add(eps), Sqrt, Div, Mul, Add
  ln_opset17_op         the same module at opset 17: one LayerNormalization node (the reference for the decomposed one)
  ln_noaffine_opset14   nn.LayerNorm(8, elementwise_affine=False), both Linears without bias (relevance conserved)
  ln_last2_opset14      nn.LayerNorm((4, 8)): axes [-2, -1]
  ln_tf_opset14         the BERT/TF-style module (u = x.mean(-1); s = (x - u).pow(2).mean(-1);
                        w * ((x - u) / sqrt(s + eps)) + b): two Sub nodes, the weight's Mul with the weight first
  ln_mul_opset18        d = x - mean; var = (d * d).mean(-1); d * rsqrt(var + eps) * w + b at opset 18 (ReduceMean
                        axes as input 1; Mul(d, d); Sqrt, Reciprocal, Mul)
  rms_t5_opset14        the T5/LLaMA RMSNorm (variance = x.pow(2).mean(-1); x * rsqrt(variance + eps); w * x),
                        without the dtype casts; both Linears without bias (relevance conserved)
  rms_div_opset14       x / sqrt(mean(x^2) + eps) * w
  rms_t5_opset18        rms_t5 at opset 18 (axes as input 1)
  rms_llama_hf_opset14  transformers' own LlamaRMSNorm (transformers<5), float32 only: its float32 casts (Cast nodes
                        around the chain) computed in float32 whatever the model's type
  rms_t5_hf_opset14     transformers' own T5LayerNorm, the same
  rms_recip_opset18     rms_t5_opset18 with its Div(1, sqrt) node replaced by Reciprocal(sqrt) (edited after export:
                        the exporter writes torch.rsqrt as Sqrt and Div)
  mean_pool             an unrelated ReduceMean: x.mean(-1) (a global average pool over the last axis of [N, 8, L])
Einsum (the norm's place holds the module; torch.einsum exports as one Einsum node):
  einsum_attn           two-head attention (q, k, v Linear(8, 8)): bhqd,bhkd->bhqk, softmax, bhqk,bhkd->bhqd
  einsum_ellipsis       ...ij,...kj->...ik of x and Linear(8, 8)(x), then ...ik,...kj->...ij
  einsum_swap           bij,bkj->bki (the output the product's transpose), then bki,bij->bkj
  einsum_const          bij,jk->bik and bij,kj->bik by constant [8, 8] matrices (~ N(0, 1/8))
  einsum_const_first    einsum_const with its first Einsum's operands swapped (edited after export): jk,bij->bik
Near misses (each must be refused with a reason; "reason" in the JSON is a word the error must contain):
  nm_pow3               the variance of (x - u).pow(3)
  nm_eps_data           epsilon computed from data: s + 1e-5 * sigmoid(x[..., :1])
  nm_axes_mismatch      the mean over -1, the variance over (-2, -1)
  nm_axes_not_last      a layer norm over axis 1 of [N, 4, 8] (not the trailing axes)
  nm_other_mean         (x - mean(2x)) ...: the mean of a different tensor
  nm_extra_reader       the variance is also added to the output
  nm_einsum_outer       einsum("bi,bj->bij") of x[:, 0]: an outer product, not a matrix product
  nm_einsum_implicit    einsum_swap with its first equation edited to the implicit "bij,bkj" (no "->": ONNX then sums
                        b too; not run)

JSON (patterns.json): generator, versions, x {"shape", "data"}, files {file: {"ops": sorted operator list, "opset",
"dtype", "output": onnxruntime's output T (not for near misses), "ort_vs_torch", "reason"?: the refusal's key word}}.
"""
import argparse
import json
import os
import sys
import warnings
from importlib.metadata import version as pkg_version

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.t5.modeling_t5 import T5LayerNorm

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore")

GENERATOR = "tools/gen_transformer_patterns.py"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "transformers",
                           "patterns")
SEED = 21
N, T, IN, HID, OUT = 2, 4, 6, 8, 3
EPS = 1e-5
MAX_FILE = 200_000


class TfLayerNorm(nn.Module):
    """BERT's TF-style layer norm (pytorch-pretrained-bert's BertLayerNorm)."""

    def __init__(self, n, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.eps = eps

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight * x + self.bias


class MulLayerNorm(TfLayerNorm):
    """A layer norm squaring by a product and multiplying by the reciprocal square root."""

    def forward(self, x):
        d = x - x.mean(-1, keepdim=True)
        var = (d * d).mean(-1, keepdim=True)
        return d * torch.rsqrt(var + self.eps) * self.weight + self.bias


class T5RmsNorm(nn.Module):
    """Hugging Face's T5LayerNorm / LlamaRMSNorm forward, without the dtype casts."""

    def __init__(self, n, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.variance_epsilon = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * x


class DivRmsNorm(T5RmsNorm):
    def forward(self, x):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon) * self.weight


class Pow3(TfLayerNorm):
    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(3).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


class EpsData(TfLayerNorm):
    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + 1e-5 * torch.sigmoid(x[..., :1]))) + self.bias


class AxesMismatch(TfLayerNorm):
    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean((-2, -1), keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


class AxesNotLast(TfLayerNorm):
    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


class OtherMean(TfLayerNorm):
    def forward(self, x):
        u = (2 * x).mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


class ExtraReader(TfLayerNorm):
    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias + s


class EinsumAttn(nn.Module):
    """Two-head attention whose products are einsums (bhqd,bhkd->bhqk and bhqk,bhkd->bhqd)."""

    def __init__(self, n):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(n, n), nn.Linear(n, n), nn.Linear(n, n)

    def forward(self, x):
        def heads(t):
            return t.reshape(t.shape[0], T, 2, HID // 2).transpose(1, 2)
        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        p = torch.softmax(torch.einsum("bhqd,bhkd->bhqk", q, k) * 0.5, dim=-1)
        return torch.einsum("bhqk,bhkd->bhqd", p, v).transpose(1, 2).reshape(x.shape[0], T, HID)


class EinsumEllipsis(nn.Module):
    """...ij,...kj->...ik (the second operand transposed), then ...ik,...kj->...ij."""

    def __init__(self, n):
        super().__init__()
        self.proj = nn.Linear(n, n)

    def forward(self, x):
        b = self.proj(x)
        return torch.einsum("...ik,...kj->...ij", torch.einsum("...ij,...kj->...ik", x, b), b)


class EinsumSwap(EinsumEllipsis):
    """bij,bkj->bki: the product's transpose (bᵀ·aᵀ), then bki,bij->bkj."""

    def forward(self, x):
        b = self.proj(x)
        return torch.einsum("bki,bij->bkj", torch.einsum("bij,bkj->bki", x, b), x)


class EinsumConst(nn.Module):
    """Data times constant matrices: bij,jk->bik and bij,kj->bik."""

    def __init__(self, n):
        super().__init__()
        self.w1 = nn.Parameter(torch.zeros(n, n))
        self.w2 = nn.Parameter(torch.zeros(n, n))

    def forward(self, x):
        return torch.einsum("bij,kj->bik", torch.einsum("bij,jk->bik", x, self.w1), self.w2)


class EinsumOuter(nn.Module):
    """An outer product (bi,bj->bij): no matrix product."""

    def forward(self, x):
        u = x[:, 0]
        return torch.einsum("bi,bj->bij", u, u)


class MeanPool(nn.Module):
    def forward(self, x):
        return x.mean(-1)


class Net(nn.Module):
    def __init__(self, norm, bias=True, pool=False):
        super().__init__()
        self.lin1 = nn.Linear(IN, HID, bias=bias)
        self.norm = norm
        self.lin2 = nn.Linear(T if pool else HID, OUT, bias=bias)

    def forward(self, x):
        return self.lin2(self.norm(self.lin1(x))).flatten(1)


# Hugging Face's classes compute in float32 whatever the model's type: their float32 files only
FLOAT32_ONLY = {"rms_llama_hf_opset14", "rms_t5_hf_opset14"}

# file stem -> (norm module factory, opset, bias, refusal key word)
VARIANTS = {
    "ln_opset14": (lambda: nn.LayerNorm(HID, eps=EPS), 14, True, None),
    "ln_opset17_op": (lambda: nn.LayerNorm(HID, eps=EPS), 17, True, None),
    "ln_noaffine_opset14": (lambda: nn.LayerNorm(HID, eps=EPS, elementwise_affine=False), 14, False, None),
    "ln_last2_opset14": (lambda: nn.LayerNorm((T, HID), eps=EPS), 14, True, None),
    "ln_tf_opset14": (lambda: TfLayerNorm(HID), 14, True, None),
    "ln_mul_opset18": (lambda: MulLayerNorm(HID), 18, True, None),
    "rms_t5_opset14": (lambda: T5RmsNorm(HID), 14, False, None),
    "rms_div_opset14": (lambda: DivRmsNorm(HID), 14, True, None),
    "rms_t5_opset18": (lambda: T5RmsNorm(HID), 18, False, None),
    "rms_recip_opset18": (lambda: T5RmsNorm(HID), 18, False, None),
    "rms_llama_hf_opset14": (lambda: LlamaRMSNorm(HID, eps=EPS), 14, False, None),
    "rms_t5_hf_opset14": (lambda: T5LayerNorm(HID, eps=EPS), 14, False, None),
    "mean_pool": (lambda: MeanPool(), 14, True, None),
    "einsum_attn": (lambda: EinsumAttn(HID), 14, True, None),
    "einsum_ellipsis": (lambda: EinsumEllipsis(HID), 14, True, None),
    "einsum_swap": (lambda: EinsumSwap(HID), 14, True, None),
    "einsum_const": (lambda: EinsumConst(HID), 14, True, None),
    "einsum_const_first": (lambda: EinsumConst(HID), 14, True, None),
    "nm_einsum_outer": (lambda: EinsumOuter(), 14, True, "bi,bj->bij"),
    "nm_einsum_implicit": (lambda: EinsumSwap(HID), 14, True, "bij,bkj"),
    "nm_pow3": (lambda: Pow3(HID), 14, True, "exponent"),
    "nm_eps_data": (lambda: EpsData(HID), 14, True, "epsilon"),
    "nm_axes_mismatch": (lambda: AxesMismatch(HID), 14, True, "axes"),
    "nm_axes_not_last": (lambda: AxesNotLast(HID), 14, True, "axes"),
    "nm_other_mean": (lambda: OtherMean(HID), 14, True, "mean of"),
    "nm_extra_reader": (lambda: ExtraReader(HID), 14, True, "also read"),
}


def init(net, gen):
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name == "norm.weight":  # a norm's scale
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            else:  # matrices [out, in] (einsum_const's w1, w2 too)
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))


def tensor_json(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def reciprocal(model):
    """Div(1, s) -> Reciprocal(s); the constant 1 removed."""
    g = model.graph
    ones = {n.output[0] for n in g.node if n.op_type == "Constant"
            and onnx.numpy_helper.to_array(n.attribute[0].t).tolist() == 1.0}
    for i, n in enumerate(g.node):
        if n.op_type == "Div" and n.input[0] in ones:
            g.node[i].CopyFrom(onnx.helper.make_node("Reciprocal", [n.input[1]], list(n.output), name=n.name))
            break
    else:
        sys.exit("no Div(1, s) to replace")
    used = {i for n in g.node for i in n.input}
    keep = [n for n in g.node if not (n.op_type == "Constant" and n.output[0] in ones and n.output[0] not in used)]
    del g.node[:]
    g.node.extend(keep)
    return model


def implicit(model):
    """The first Einsum's equation without its output: "bij,bkj"."""
    n = next(n for n in model.graph.node if n.op_type == "Einsum")
    n.attribute[0].s = n.attribute[0].s.split(b"->")[0]
    return model


def const_first(model):
    """The first Einsum's operands swapped: "jk,bij->bik" (a constant times data)."""
    n = next(n for n in model.graph.node if n.op_type == "Einsum")
    a, b = n.attribute[0].s.split(b"->")[0].split(b",")
    n.attribute[0].s = b + b"," + a + b"->" + n.attribute[0].s.split(b"->")[1]
    n.input[0], n.input[1] = n.input[1], n.input[0]
    return model


EDITS = {"rms_recip_opset18": reciprocal, "nm_einsum_implicit": implicit, "einsum_const_first": const_first}


def export(net, x, path, opset, edit=None):
    torch.onnx.export(net, (x,), path, dynamo=False, opset_version=opset, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, do_constant_folding=True)
    model = onnx.load(path)
    if edit:
        model = edit(model)
        onnx.save(model, path)
    onnx.checker.check_model(model)
    size = os.path.getsize(path)
    if size > MAX_FILE:
        sys.exit(f"{path}: {size} bytes")
    return model


def run(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def max_rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    out = os.path.abspath(ap.parse_args().out)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    x = (torch.randn(N, T, IN, generator=gen) * 1e4).round() / 1e4
    files = {}
    for stem, (norm, opset, bias, reason) in VARIANTS.items():
        same = {"ln_opset17_op": "ln_opset14", "rms_recip_opset18": "rms_t5_opset18",
                "einsum_const_first": "einsum_const"}.get(stem, stem)
        gen = torch.Generator().manual_seed(SEED + sum(map(ord, same)))
        net = Net(norm(), bias=bias, pool=stem == "mean_pool").eval()
        if stem == "nm_einsum_outer":
            net.lin2 = nn.Linear(HID, OUT)
        init(net, gen)
        with torch.no_grad():
            want = net(x).numpy()
        twins = [("", torch.float64, x.numpy())] + ([] if stem.startswith("nm_") else
                                                     [(".f32", torch.float32, x.numpy().astype(np.float32))])
        if stem in FLOAT32_ONLY:
            twins = twins[1:]
        for suffix, dtype, xn in twins:
            name = f"{stem}{suffix}.onnx"
            path = os.path.join(out, name)
            m = net.to(dtype)
            model = export(m, torch.from_numpy(xn), path, opset, EDITS.get(stem))
            if reason:  # a near miss is not run
                got, d = None, 0.0
            else:
                got = run(path, xn)
                d = max_rel(got.astype(np.float64), want)
            tol = 1e-12 if dtype == torch.float64 else 1e-5
            if d > tol and not reason:
                sys.exit(f"{name}: onnxruntime deviates from torch by {d:e}")
            entry = {"ops": sorted({n.op_type for n in model.graph.node}), "opset": opset,
                     "dtype": "float64" if dtype == torch.float64 else "float32"}
            if reason:
                entry["reason"] = reason
            else:
                entry["output"] = tensor_json(got)
                entry["ort_vs_torch"] = d
            files[name] = entry
            run_note = "a near miss, not run" if reason else f"ort vs torch {d:.1e}"
            print(f"{name}: {os.path.getsize(path)} bytes, {run_note}, {entry['ops']}")
            net.to(torch.float64)
    doc = {
        "generator": GENERATOR,
        "versions": {p: pkg_version(p) for p in ["torch", "onnx", "onnxruntime", "numpy", "transformers"]},
        "x": tensor_json(x.numpy()),
        "files": files,
    }
    with open(os.path.join(out, "patterns.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
