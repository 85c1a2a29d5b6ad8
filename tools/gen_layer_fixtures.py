#!/usr/bin/env python3
"""Generate tests/fixtures/layers.json: PyTorch's forward pass and input gradient of every
single-input layer the crate implements beyond the first wave, on inputs that hit the
layers' edge cases, so that the Rust layers are checked against PyTorch's semantics.

How to run (from the repository root):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch numpy
    ~/venv/bin/python tools/gen_layer_fixtures.py            # writes tests/fixtures/layers.json
    ~/venv/bin/python tools/gen_layer_fixtures.py --out DIR  # write somewhere else

float64, one thread, fixed seeds: the output is deterministic for a given torch version
(written into the file).

Cases (each: a layer description, an input x, PyTorch's output y = layer(x), a random
upstream gradient g and PyTorch's input gradient dy/dx^T g):
* activations: ReLU6 (Hardtanh(0, 6)), Hardtanh(-1, 1), LeakyReLU(0.1), Sigmoid, Tanh,
  Hardsigmoid, Hardswish, SiLU, ELU(1.0), ELU(0.5), GELU, GELU(tanh) on a grid that includes
  their kinks (-3, 0, 3, 6 exactly) so that PyTorch's derivative conventions there are pinned;
* average pooling: kernel/stride/padding with count_include_pad on and off, ceil_mode on odd
  sizes (windows cut at the end), adaptive pooling with integral and non-integral windows,
  global pooling;
* max pooling with ceil_mode (the ResNet/SqueezeNet stems' 3×3 stride-2 pools), and with padding that differs per
  side (F.pad with -inf before an unpadded pool, as CoreML's converter writes it; "pads" [top, left, bottom,
  right]);
* convolutions with groups (grouped and depthwise, with and without bias) and asymmetric
  padding (F.pad before an unpadded conv, as ONNX/TensorFlow "same" padding);
* batch normalisation in eval mode with non-trivial running statistics;
* constant zero padding;
* transformer layers: layer norm (last one or two axes, affine or not, a constant row), RMS
  norm, a dense layer on [N, T, D] tokens, softmax along an inner axis, and matrix products
  of two computed tensors (attention scores, a product broadcast over heads: cases with
  "x2"/"dx2", the second input and its gradient).

Format: {"generator", "torch_version", "cases": [{"name", "layer": {"op": ..., params},
"x": T, "y": T, "g": T, "dx": T}]} with tensors {"shape": [...], "data": [flat C order]}.
Layer ops and params: "lrn" {"size", "alpha", "beta", "k"} (nn.LocalResponseNorm), "activation" {"kind", "params"}, "avgpool2d" {"kernel", "stride",
"padding", "ceil_mode", "count_include_pad"}, "adaptive_avgpool2d" {"output"}, "maxpool2d"
{"kernel", "stride", "padding", "ceil_mode", optional "pads" [top, left, bottom, right]}, "conv2d" {"weight", "bias" (or null),
"stride", "pads" [top, left, bottom, right], "dilation", "groups"}, "batchnorm" {"mean",
"var", "weight", "bias", "eps"}, "pad" {"pads": [[before, after] per last axis]}, "layernorm" {"shape", "eps",
"weight" (or null), "bias" (or null)}, "rmsnorm" {"shape", "eps", "weight" (or null)}, "dense" {"weight", "bias"},
"softmax" {"axis" (per sample)}, "matmul" {}.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures")


def tj(t):
    a = np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float64)
    assert np.all(np.isfinite(a))
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def case(name, layer, fn, x, gen):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    g = torch.randn(y.shape, generator=gen)
    (dx,) = torch.autograd.grad(y, x, g)
    return {"name": name, "layer": layer, "x": tj(x), "y": tj(y), "g": tj(g), "dx": tj(dx)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(7)
    cases = []

    # activations on a grid with their kinks
    grid = torch.tensor([-7.0, -3.5, -3.0, -2.9, -1.0, -0.5, 0.0, 0.25, 1.0, 2.5, 3.0, 3.1, 5.9, 6.0, 6.5, 9.0])
    grid = torch.cat([grid, torch.randn(16, generator=gen) * 3]).reshape(2, 16)
    acts = [
        ("relu6", {}, lambda x: F.relu6(x)),
        ("clip", {"low": -1.0, "high": 1.0}, lambda x: F.hardtanh(x, -1.0, 1.0)),
        ("leaky_relu", {"slope": 0.1}, lambda x: F.leaky_relu(x, 0.1)),
        ("sigmoid", {}, torch.sigmoid),
        ("tanh", {}, torch.tanh),
        ("hardsigmoid", {}, F.hardsigmoid),
        ("hardswish", {}, F.hardswish),
        ("silu", {}, F.silu),
        ("elu", {"alpha": 1.0}, lambda x: F.elu(x, 1.0)),
        ("elu", {"alpha": 0.5}, lambda x: F.elu(x, 0.5)),
        ("gelu", {}, F.gelu),
        ("gelu_tanh", {}, lambda x: F.gelu(x, approximate="tanh")),
    ]
    for kind, params, fn in acts:
        name = kind + "".join(f"_{v}" for v in params.values())
        cases.append(case(name, {"op": "activation", "kind": kind, "params": params}, fn, grid, gen))

    # average pooling
    x = torch.randn(1, 2, 7, 9, generator=gen)
    for k, s, p, ceil, cip in [
        ((3, 3), (2, 2), (1, 1), False, True),
        ((3, 3), (2, 2), (1, 1), False, False),
        ((3, 3), (2, 2), (1, 1), True, True),
        ((3, 3), (2, 2), (1, 1), True, False),
        ((2, 2), (2, 2), (0, 0), True, True),
        ((3, 2), (1, 2), (1, 0), False, True),
        ((2, 2), (2, 2), (0, 0), False, True),
    ]:
        layer = {"op": "avgpool2d", "kernel": list(k), "stride": list(s), "padding": list(p),
                 "ceil_mode": ceil, "count_include_pad": cip}
        name = f"avgpool_k{k}_s{s}_p{p}_ceil{int(ceil)}_cip{int(cip)}"
        cases.append(case(name, layer, lambda t, k=k, s=s, p=p, c=ceil, i=cip: F.avg_pool2d(t, k, s, p, c, i), x, gen))
    for out in [(1, 1), (3, 3), (2, 4), (7, 9), (4, 5)]:
        layer = {"op": "adaptive_avgpool2d", "output": list(out)}
        cases.append(case(f"adaptive_avgpool_{out}", layer, lambda t, o=out: F.adaptive_avg_pool2d(t, o), x, gen))

    # max pooling with ceil_mode
    for k, s, p in [((3, 3), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0))]:
        layer = {"op": "maxpool2d", "kernel": list(k), "stride": list(s), "padding": list(p), "ceil_mode": True}
        cases.append(case(f"maxpool_ceil_k{k}_s{s}_p{p}", layer,
                          lambda t, k=k, s=s, p=p: F.max_pool2d(t, k, s, p, ceil_mode=True), x, gen))

    # grouped, depthwise and asymmetrically padded convolutions
    x = torch.randn(1, 4, 6, 7, generator=gen)
    for name, cout, groups, k, stride, pads, bias in [
        ("conv_groups2", 6, 2, (3, 3), (1, 1), (1, 1, 1, 1), True),
        ("conv_depthwise", 4, 4, (3, 3), (2, 2), (1, 1, 1, 1), False),
        ("conv_depthwise_x2", 8, 4, (3, 3), (1, 1), (1, 1, 1, 1), True),
        ("conv_asym_pad", 3, 1, (3, 3), (2, 2), (0, 0, 1, 1), True),
        ("conv_asym_pad_groups", 4, 2, (2, 3), (1, 1), (1, 0, 0, 2), True),
    ]:
        w = torch.randn(cout, 4 // groups, *k, generator=gen) * 0.5
        b = torch.randn(cout, generator=gen) * 0.1 if bias else None
        top, left, bottom, right = pads

        def fn(t, w=w, b=b, stride=stride, groups=groups, pads=(left, right, top, bottom)):
            return F.conv2d(F.pad(t, pads), w, b, stride=stride, groups=groups)

        layer = {"op": "conv2d", "weight": tj(w), "bias": tj(b) if b is not None else None,
                 "stride": list(stride), "pads": [top, left, bottom, right], "dilation": [1, 1], "groups": groups}
        cases.append(case(name, layer, fn, x, gen))

    # batch normalisation (eval) on images and on features
    for shape in [(2, 4, 3, 5), (3, 4)]:
        c = 4
        mean = torch.randn(c, generator=gen) * 0.3
        var = torch.rand(c, generator=gen) * 1.5 + 0.5
        weight = torch.rand(c, generator=gen) + 0.5
        bias = torch.randn(c, generator=gen) * 0.2
        xb = torch.randn(*shape, generator=gen)
        layer = {"op": "batchnorm", "mean": tj(mean), "var": tj(var), "weight": tj(weight), "bias": tj(bias), "eps": 1e-5}
        cases.append(case(f"batchnorm_{len(shape)}d", layer,
                          lambda t, m=mean, v=var, w=weight, b=bias: F.batch_norm(t, m, v, w, b, False, 0.0, 1e-5),
                          xb, gen))

    # zero padding of the last two axes
    xp = torch.randn(2, 3, 4, 5, generator=gen)
    cases.append(case("pad", {"op": "pad", "pads": [[1, 0], [2, 3]]}, lambda t: F.pad(t, (2, 3, 1, 0)), xp, gen))

    # local response normalisation across channels (PyTorch's window; even size included)
    for size, alpha, beta, k in [(5, 1e-1, 0.75, 2.0), (4, 0.5, 0.6, 1.0), (3, 2.0, 1.5, 0.5)]:
        xl = torch.randn(2, 7, 3, 3, generator=gen) * 1.5
        lrn = torch.nn.LocalResponseNorm(size, alpha=alpha, beta=beta, k=k)
        cases.append(case(f"lrn_{size}", {"op": "lrn", "size": size, "alpha": alpha, "beta": beta, "k": k},
                          lrn, xl, gen))

    # max pooling with padding that differs per side (ONNX pads, or CoreML's Pad of -FLT_MAX before a pool): F.pad
    # with -inf, then an unpadded pool; up to kernel - 1 per side, every window still holds an input value
    xm = torch.randn(2, 3, 7, 8, generator=gen)
    for k, s, pads, ceil in [
        ((3, 3), (2, 2), (0, 0, 1, 1), False),
        ((3, 3), (2, 2), (1, 0, 0, 1), False),
        ((3, 2), (1, 2), (2, 1, 0, 0), False),
        ((3, 3), (2, 2), (0, 2, 2, 0), True),
        ((2, 2), (2, 2), (0, 0, 1, 1), False),
    ]:
        top, left, bottom, right = pads
        layer = {"op": "maxpool2d", "kernel": list(k), "stride": list(s), "padding": [0, 0], "pads": list(pads),
                 "ceil_mode": ceil}
        cases.append(case(f"maxpool_pads_k{k}_s{s}_p{pads}_ceil{int(ceil)}", layer,
                          lambda t, k=k, s=s, p=(left, right, top, bottom), c=ceil:
                          F.max_pool2d(F.pad(t, p, value=-float("inf")), k, s, 0, ceil_mode=c), xm, gen))

    # transformer layers (issue #21): layer norm over the last one or two axes, with and
    # without affine parameters; RMS norm; a dense layer on the last axis of [N, T, D]
    # tokens; a softmax along a middle axis (attention scores [N, H, T, T] along the last);
    # values of both signs and a row that is constant (variance 0: eps alone).
    xt = torch.randn(2, 3, 4, generator=gen) * 2 + 0.5
    xt[1, 2, :] = 0.75
    for shape, affine, eps in [((4,), True, 1e-5), ((4,), False, 1e-6), ((3, 4), True, 1e-12)]:
        w = torch.rand(shape, generator=gen) + 0.5 if affine else None
        b = torch.randn(shape, generator=gen) * 0.2 if affine else None
        layer = {"op": "layernorm", "shape": list(shape), "eps": eps,
                 "weight": tj(w) if affine else None, "bias": tj(b) if affine else None}
        cases.append(case(f"layernorm_{len(shape)}axes_affine{int(affine)}", layer,
                          lambda t, sh=shape, w=w, b=b, e=eps: F.layer_norm(t, sh, w, b, e), xt, gen))
    for affine in [True, False]:
        w = torch.rand(4, generator=gen) + 0.5 if affine else None
        layer = {"op": "rmsnorm", "shape": [4], "eps": 1e-6, "weight": tj(w) if affine else None}
        cases.append(case(f"rmsnorm_affine{int(affine)}", layer,
                          lambda t, w=w: F.rms_norm(t, (4,), w, 1e-6), xt, gen))
    w = torch.randn(5, 4, generator=gen) * 0.5
    b = torch.randn(5, generator=gen) * 0.3
    cases.append(case("dense_tokens", {"op": "dense", "weight": tj(w), "bias": tj(b)},
                      lambda t, w=w, b=b: F.linear(t, w, b), xt, gen))
    xs = torch.randn(2, 2, 3, 3, generator=gen) * 3
    cases.append(case("softmax_scores", {"op": "softmax", "axis": 2}, lambda t: F.softmax(t, dim=3), xs, gen))
    cases.append(case("softmax_middle", {"op": "softmax", "axis": 0}, lambda t: F.softmax(t, dim=1), xs, gen))

    # matrix products of two computed tensors (two inputs: "x2" and its gradient "dx2"):
    # attention scores q·kᵀ [N, H, T, d]·[N, H, d, T], and a product broadcast over a
    # leading axis [N, 1, T, d]·[N, H, d, T]
    for name, sa, sb in [("matmul_heads", (2, 2, 3, 4), (2, 2, 4, 3)), ("matmul_broadcast", (2, 1, 3, 4), (2, 2, 4, 5))]:
        a = torch.randn(sa, generator=gen).requires_grad_(True)
        bb = torch.randn(sb, generator=gen).requires_grad_(True)
        y = torch.matmul(a, bb)
        g = torch.randn(y.shape, generator=gen)
        da, db = torch.autograd.grad(y, (a, bb), g)
        cases.append({"name": name, "layer": {"op": "matmul"}, "x": tj(a), "x2": tj(bb), "y": tj(y), "g": tj(g),
                      "dx": tj(da), "dx2": tj(db)})

    out = {"generator": "tools/gen_layer_fixtures.py", "torch_version": torch.__version__, "cases": cases}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "layers.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
