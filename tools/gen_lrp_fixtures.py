#!/usr/bin/env python3
"""Generate the LRP reference fixtures (tests/fixtures/lrp_*.json) from the REAL zennit library.

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch zennit numpy
    ~/venv/bin/python tools/gen_lrp_fixtures.py            # writes tests/fixtures/lrp_{mlp,cnn,deep,wide}.json
    ~/venv/bin/python tools/gen_lrp_fixtures.py --out DIR  # write somewhere else

The fixtures were produced with zennit 0.5.1 and torch 2.x (CPU); the versions are written into every file.
The script is deterministic: fixed seeds, float64 everywhere, one CPU thread, so re-running it gives
byte-identical files (given the same zennit/torch versions).

What it does
------------
1. Pins down zennit's exact per-rule formulas: independent numpy re-implementations of every rule for one
   dense layer z = W a + b (epsilon, gamma, alpha-beta, z-plus, z-box, flat, w-square, incl. the z == 0 case of
   gamma and epsilon) and of flat / w-square on a padded conv layer are asserted equal to zennit.
2. Builds four small float64 torch.nn.Sequential networks (mlp, cnn, deep, wide) made only of Linear, Conv2d, ReLU,
   MaxPool2d and Flatten, with N(0, 1/sqrt(fan_in)) weights and non-zero random biases. A seed search (deterministic)
   rejects draws where a max-pool window has a (near-)tie or an affine pre-activation suffers from catastrophic
   cancellation, so the fixtures do not depend on tie-breaking and are reproducible to 1e-9 by any sane
   implementation.
3. For every network runs zennit (Gradient attributor + composite) for each case (uniform rules, zennit preset
   composites, our "layered" recipe), records the rule actually attached to every module (read back from the
   registered hooks), the input relevance, and for some cases the relevance at the input of every module
   (tensor hooks), which is cross-validated by running zennit on the sub-network modules[k:].
4. Sanity checks: no NaN; LRP-0 on a bias-free copy conserves relevance; LRP-0 with R_out = logit equals
   gradient * input; descriptors rebuilt into rules reproduce every case.
5. Replays every case from the written JSON alone (torch functional ops + textbook formulas, no zennit) -- the
   reference for what the Rust implementation has to compute (see `replay_affine` / `replay_fixture`).

Fixture format: see tools/README.md ("LRP fixtures").
"""
import argparse
import copy
import inspect
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import zennit
from zennit.attribution import Gradient
from zennit.composites import (
    LayerMapComposite, NameMapComposite, SpecialFirstLayerMapComposite,
    EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat,
)
from zennit.core import Hook, Stabilizer
from zennit.rules import Epsilon, Gamma, AlphaBeta, ZPlus, ZBox, Flat, WSquare, Pass
from zennit import types as ztypes

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

GENERATOR = "tools/gen_lrp_fixtures.py"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def assert_close(a, b, tol, what, rel=True):
    """|a-b| <= tol * max(1, max|b|) (rel=True) or <= tol (rel=False)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    check(a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}")
    check(np.all(np.isfinite(a)) and np.all(np.isfinite(b)), f"{what}: non-finite values")
    scale = max(1.0, float(np.max(np.abs(b)))) if (rel and b.size) else 1.0
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    check(err <= tol * scale, f"{what}: max abs diff {err:.3e} > {tol:.1e} * {scale:.3g}")
    return err


def tensor_json(t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a = np.ascontiguousarray(a, dtype=np.float64)
    check(np.all(np.isfinite(a)), "refusing to write non-finite tensor")
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


# ------------------------------------------------------------------------------------------------------------------
# 1. Textbook numpy re-implementations for ONE dense layer z = W a + b (W: [out, in], a: [N, in], R: [N, out]).
# ------------------------------------------------------------------------------------------------------------------

def sign0(z):
    return np.where(z >= 0, 1.0, -1.0)


def stab(z, eps):
    """zennit Stabilizer: z + eps * sign0(z) (z == 0 counts as positive)."""
    return z + eps * sign0(z)


def pos(x):
    return np.maximum(x, 0.0)


def neg(x):
    return np.minimum(x, 0.0)


def np_epsilon(a, W, b, R, eps):
    z = a @ W.T + b
    s = R / stab(z, eps)
    return a * (s @ W)


def np_gamma(a, W, b, R, gamma, eps):
    ap, an = pos(a), neg(a)
    Wup, Wdn = W + gamma * pos(W), W + gamma * neg(W)
    z = a @ W.T + b
    # outputs with z > 0: positive inputs see W + g W+, negative inputs see W + g W-, bias b + g b+
    dpos = ap @ Wup.T + an @ Wdn.T + (b + gamma * pos(b))
    # outputs with z < 0: mirrored, bias b + g b-
    dneg = ap @ Wdn.T + an @ Wup.T + (b + gamma * neg(b))
    spos = (z > 0) * R / stab(dpos, eps)
    sneg = (z < 0) * R / stab(dneg, eps)  # z == 0 exactly: relevance dropped
    return ap * (spos @ Wup) + an * (spos @ Wdn) + ap * (sneg @ Wdn) + an * (sneg @ Wup)


def np_alphabeta(a, W, b, R, alpha, beta, eps):
    ap, an = pos(a), neg(a)
    Wp, Wn = pos(W), neg(W)
    act = ap @ Wp.T + an @ Wn.T + pos(b)   # positive contributions, b+ only
    inh = ap @ Wn.T + an @ Wp.T + neg(b)   # negative contributions, b- only
    sa = R / stab(act, eps)
    si = R / stab(inh, eps)
    return alpha * (ap * (sa @ Wp) + an * (sa @ Wn)) - beta * (ap * (si @ Wn) + an * (si @ Wp))


def np_zplus(a, W, b, R, eps):
    ap, an = pos(a), neg(a)
    Wp, Wn = pos(W), neg(W)
    d = ap @ Wp.T + an @ Wn.T + pos(b)
    s = R / stab(d, eps)
    return ap * (s @ Wp) + an * (s @ Wn)


def np_zbox(a, W, b, R, low, high, eps):
    # bias cancels: (W a + b) - (W+ l + b+) - (W- h + b-) = W+ (a - l) + W- (a - h)
    Wp, Wn = pos(W), neg(W)
    low = np.broadcast_to(low, a.shape)
    high = np.broadcast_to(high, a.shape)
    z = (a - low) @ Wp.T + (a - high) @ Wn.T
    s = R / stab(z, eps)
    return (a - low) * (s @ Wp) + (a - high) * (s @ Wn)


def np_flat(a, W, b, R, eps):
    n = np.full(R.shape, float(W.shape[1]))  # receptive field size; bias ignored
    s = R / stab(n, eps)
    return s @ np.ones_like(W)


def np_wsquare(a, W, b, R, eps):
    d = np.ones_like(a) @ (W ** 2).T + b ** 2  # NB: bias squared is included
    s = R / stab(d, eps)
    return s @ (W ** 2)


def zennit_single(module, rule, x, R):
    comp = LayerMapComposite([(ztypes.Linear, rule)])
    x = x.detach().clone().requires_grad_(True)
    with Gradient(module, comp) as attributor:
        _, rel = attributor(x, R)
    return rel.detach().numpy()


def np_conv_count(x_shape, weight_shape, stride, padding, dilation):
    """Number of non-padding inputs in each conv output's receptive field (times C_in)."""
    _, cin, H, W_ = x_shape
    cout, _, kh, kw = weight_shape
    Ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    Wo = (W_ + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    cnt = np.zeros((Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            c = 0
            for u in range(kh):
                for v in range(kw):
                    y = i * stride - padding + u * dilation
                    xx = j * stride - padding + v * dilation
                    if 0 <= y < H and 0 <= xx < W_:
                        c += 1
            cnt[i, j] = c * cin
    return cnt


def verify_dense_formulas():
    gen = torch.Generator().manual_seed(1234)
    N, din, dout = 4, 7, 5
    lin = torch.nn.Linear(din, dout)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(dout, din, generator=gen) / math.sqrt(din))
        lin.bias.copy_(torch.randn(dout, generator=gen) * 0.5)
        lin.bias[0] = -abs(lin.bias[0]) - 0.1  # make sure both bias signs are present
        lin.bias[1] = abs(lin.bias[1]) + 0.1
    x = torch.randn(N, din, generator=gen)  # mixed-sign inputs: exercises the a- paths
    R = torch.randn(N, dout, generator=gen)
    low = -torch.linspace(1.5, 2.5, din)[None]
    high = torch.linspace(1.5, 2.5, din)[None]
    x = torch.maximum(torch.minimum(x, high), low)
    a, W, b, Rn = x.numpy(), lin.weight.detach().numpy(), lin.bias.detach().numpy(), R.numpy()
    lo, hi = low.numpy(), high.numpy()

    cases = [
        ("epsilon(1e-6)", Epsilon(), np_epsilon(a, W, b, Rn, 1e-6)),
        ("epsilon(0.25)", Epsilon(0.25), np_epsilon(a, W, b, Rn, 0.25)),
        ("epsilon(0)", Epsilon(0.0), np_epsilon(a, W, b, Rn, 0.0)),
        ("gamma(0.25)", Gamma(), np_gamma(a, W, b, Rn, 0.25, 1e-6)),
        ("gamma(0)", Gamma(0.0), np_gamma(a, W, b, Rn, 0.0, 1e-6)),
        ("gamma(1)", Gamma(1.0), np_gamma(a, W, b, Rn, 1.0, 1e-6)),
        ("alphabeta(2,1)", AlphaBeta(2.0, 1.0), np_alphabeta(a, W, b, Rn, 2.0, 1.0, 1e-6)),
        ("alphabeta(1,0)", AlphaBeta(1.0, 0.0), np_alphabeta(a, W, b, Rn, 1.0, 0.0, 1e-6)),
        ("zplus", ZPlus(), np_zplus(a, W, b, Rn, 1e-6)),
        ("zbox", ZBox(low, high), np_zbox(a, W, b, Rn, lo, hi, 1e-6)),
        ("flat", Flat(), np_flat(a, W, b, Rn, 1e-6)),
        ("wsquare", WSquare(), np_wsquare(a, W, b, Rn, 1e-6)),
    ]
    for name, rule, expected in cases:
        got = zennit_single(torch.nn.Sequential(lin), rule, x, R)
        err = assert_close(got, expected, 1e-12, f"dense textbook {name}")
        print(f"  dense {name:16s} max|zennit - numpy| = {err:.2e}")
    # z-plus is alpha=1, beta=0
    assert_close(np_zplus(a, W, b, Rn, 1e-6), np_alphabeta(a, W, b, Rn, 1.0, 0.0, 1e-6), 1e-13, "zplus == ab(1,0)")
    # wrong variants must NOT match (to make sure the tests above are discriminative)
    wrong = {
        "gamma with plain bias b (no +g*b+/-)": lambda: _np_gamma_plain_bias(a, W, b, Rn, 0.25, 1e-6),
        "zplus with full bias": lambda: _np_zplus_fullbias(a, W, b, Rn, 1e-6),
        "wsquare without bias": lambda: np_wsquare(a, W, 0 * b, Rn, 1e-6),
    }
    ref = {
        "gamma with plain bias b (no +g*b+/-)": zennit_single(torch.nn.Sequential(lin), Gamma(), x, R),
        "zplus with full bias": zennit_single(torch.nn.Sequential(lin), ZPlus(), x, R),
        "wsquare without bias": zennit_single(torch.nn.Sequential(lin), WSquare(), x, R),
    }
    for k, fn in wrong.items():
        check(np.max(np.abs(fn() - ref[k])) > 1e-6, f"variant '{k}' unexpectedly matches zennit")

    # z == 0 exactly: epsilon treats it as positive (+eps), gamma drops the relevance of that output.
    lin0 = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin0.weight.copy_(torch.tensor([[0.5, -0.25, -0.25, 0.0], [0.75, 0.5, -1.0, 0.25], [-0.5, 0.25, 1.0, 0.5]]))
        lin0.bias.copy_(torch.tensor([0.0, 0.125, -0.25]))
    x0 = torch.tensor([[1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, -2.0]])
    R0 = torch.tensor([[1.0, 0.5, -0.75], [2.0, -1.0, 0.25]])
    z0 = lin0(x0).detach().numpy()
    check(np.all(z0[:, 0] == 0.0), "z==0 construction failed")
    a0, W0, b0, Rn0 = x0.numpy(), lin0.weight.detach().numpy(), lin0.bias.detach().numpy(), R0.numpy()
    seq0 = torch.nn.Sequential(lin0)
    assert_close(zennit_single(seq0, Epsilon(), x0, R0), np_epsilon(a0, W0, b0, Rn0, 1e-6), 1e-12, "eps z==0")
    g0 = zennit_single(seq0, Gamma(), x0, R0)
    assert_close(g0, np_gamma(a0, W0, b0, Rn0, 0.25, 1e-6), 1e-12, "gamma z==0")
    # relevance of output 0 (z == 0) is dropped entirely
    Rdrop = Rn0.copy()
    Rdrop[:, 0] = 0.0
    assert_close(g0, zennit_single(seq0, Gamma(), x0, torch.tensor(Rdrop)), 0.0, "gamma drops z==0", rel=False)
    # ... and that output would have carried relevance under the textbook "z >= 0 is positive" convention
    Rsel = np.zeros_like(Rn0)
    Rsel[:, 0] = Rn0[:, 0]
    check(np.max(np.abs(zennit_single(seq0, Epsilon(), x0, torch.tensor(Rsel)))) > 1e-3, "z==0 test not discriminative")
    print("  z == 0: epsilon uses +eps (sign0), gamma drops that output's relevance: OK")

    # conv layer with padding: flat / wsquare count only non-padding positions
    conv = torch.nn.Conv2d(2, 3, 3, stride=2, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(3, 2, 3, 3, generator=gen) / math.sqrt(18))
        conv.bias.copy_(torch.randn(3, generator=gen) * 0.5)
    xc = torch.randn(2, 2, 7, 7, generator=gen)
    Rc = torch.randn(2, 3, 4, 4, generator=gen)
    cnt = np_conv_count(xc.shape, conv.weight.shape, 2, 1, 1)
    sflat = Rc.numpy() / stab(cnt[None, None], 1e-6)
    exp_flat = F.conv_transpose2d(torch.tensor(sflat), torch.ones(3, 2, 3, 3), stride=2, padding=1,
                                  output_padding=0).numpy()
    # conv_transpose output size: (4-1)*2 - 2 + 3 = 7 -> matches 7x7
    assert_close(zennit_single(torch.nn.Sequential(conv), Flat(), xc, Rc), exp_flat, 1e-12, "conv flat")
    W2 = conv.weight.detach().numpy() ** 2
    d = np.zeros((3, 4, 4))
    for o in range(3):
        for i in range(4):
            for j in range(4):
                s_ = 0.0
                for c in range(2):
                    for u in range(3):
                        for v in range(3):
                            y, xx = 2 * i - 1 + u, 2 * j - 1 + v
                            if 0 <= y < 7 and 0 <= xx < 7:
                                s_ += W2[o, c, u, v]
                d[o, i, j] = s_ + conv.bias.detach().numpy()[o] ** 2
    sw = Rc.numpy() / stab(d[None], 1e-6)
    exp_w = F.conv_transpose2d(torch.tensor(sw), torch.tensor(W2), stride=2, padding=1).numpy()
    assert_close(zennit_single(torch.nn.Sequential(conv), WSquare(), xc, Rc), exp_w, 1e-12, "conv wsquare")
    print("  conv flat / wsquare (padding excluded from the count / sum of w^2): OK")


def _np_gamma_plain_bias(a, W, b, R, gamma, eps):
    ap, an = pos(a), neg(a)
    Wup, Wdn = W + gamma * pos(W), W + gamma * neg(W)
    z = a @ W.T + b
    dpos = ap @ Wup.T + an @ Wdn.T + b
    dneg = ap @ Wdn.T + an @ Wup.T + b
    spos = (z > 0) * R / stab(dpos, eps)
    sneg = (z < 0) * R / stab(dneg, eps)
    return ap * (spos @ Wup) + an * (spos @ Wdn) + ap * (sneg @ Wdn) + an * (sneg @ Wup)


def _np_zplus_fullbias(a, W, b, R, eps):
    ap, an = pos(a), neg(a)
    d = ap @ pos(W).T + an @ neg(W).T + b
    s = R / stab(d, eps)
    return ap * (s @ pos(W)) + an * (s @ neg(W))


# ------------------------------------------------------------------------------------------------------------------
# 2. Networks
# ------------------------------------------------------------------------------------------------------------------

NETWORKS = {
    "mlp": {
        "input_shape": (6,),
        "batch": 3,
        "target": [0, 2, 3],
        "low": np.linspace(-2.0, -3.0, 6), "high": np.linspace(2.0, 3.0, 6),
        "layers": [
            ("dense", 6, 8), ("relu",), ("dense", 8, 7), ("relu",), ("dense", 7, 4),
        ],
        "seed": 1000,
    },
    "cnn": {
        "input_shape": (2, 9, 9),
        "batch": 3,
        "target": [1, 4, 2],
        "low": np.array([-2.0, -2.5]), "high": np.array([2.0, 2.5]),
        "layers": [
            ("conv2d", 2, 4, 3, 2, 1, 1), ("relu",), ("maxpool2d", 3, 2, 1), ("flatten",),
            ("dense", 36, 10), ("relu",), ("dense", 10, 5),
        ],
        "seed": 2000,
    },
    "deep": {
        "input_shape": (3, 12, 12),
        "batch": 2,
        "target": [3, 1],
        "low": np.array([-2.0, -2.5, -3.0]), "high": np.array([2.0, 2.5, 3.0]),
        "layers": [
            ("conv2d", 3, 6, 3, 1, 1, 1), ("relu",),
            ("conv2d", 6, 6, 3, 1, 2, 2), ("relu",), ("maxpool2d", 2, 2, 0),
            ("conv2d", 6, 8, 3, 1, 1, 1), ("relu",), ("maxpool2d", 2, 2, 0),
            ("flatten",),
            ("dense", 72, 16), ("relu",), ("dense", 16, 10), ("relu",), ("dense", 10, 4),
        ],
        "seed": 3000,
    },
    # the second convolution (16 -> 16 channels, 3x3, stride 1, 20x20 outputs) takes the Rust crate's Winograd path
    "wide": {
        "input_shape": (1, 20, 20),
        "batch": 2,
        "target": [2, 0],
        "low": np.array([-2.0]), "high": np.array([2.0]),
        "layers": [
            ("conv2d", 1, 16, 3, 1, 1, 1), ("relu",),
            ("conv2d", 16, 16, 3, 1, 1, 1), ("relu",), ("maxpool2d", 2, 2, 0),
            ("conv2d", 16, 4, 3, 2, 1, 1), ("relu",),
            ("flatten",),
            ("dense", 100, 4),
        ],
        "seed": 4000,
        "record_layers": False,  # keeps the fixture small
    },
}

BIAS_STD = 0.3        # biases ~ N(0, BIAS_STD): mixed signs; |b| < 0.01 is pushed away from zero
MIN_POOL_GAP = 1e-6   # minimum gap between the largest and 2nd largest entry of every max-pool window with max > 0
MAX_ZERO_WINDOWS = 0.1  # at most this fraction of max-pool windows may be all-zero (every ReLU in it dead)
MIN_COND = 1e-4       # minimum |z| / sum|terms| of every affine pre-activation (no catastrophic cancellation)


def build_network(spec, seed):
    gen = torch.Generator().manual_seed(seed)
    mods = []
    L = spec["layers"]
    for idx, layer in enumerate(L):
        kind = layer[0]
        if kind == "dense":
            _, fin, fout = layer
            m = torch.nn.Linear(fin, fout)
            fan_in = fin
        elif kind == "conv2d":
            _, cin, cout, k, stride, pad, dil = layer
            m = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil)
            fan_in = cin * k * k
        elif kind == "relu":
            mods.append(torch.nn.ReLU())
            continue
        elif kind == "maxpool2d":
            _, k, stride, pad = layer
            mods.append(torch.nn.MaxPool2d(k, stride=stride, padding=pad))
            continue
        elif kind == "flatten":
            mods.append(torch.nn.Flatten())
            continue
        else:
            raise ValueError(kind)
        with torch.no_grad():
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in))
            bias = torch.randn(m.bias.shape, generator=gen) * BIAS_STD
            bias = torch.where(bias.abs() < 0.01, torch.where(bias < 0, -0.01, 0.01) + bias, bias)
            m.bias.copy_(bias)
        mods.append(m)
    model = torch.nn.Sequential(*mods)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, gen


def torch_bounds(spec):
    shape = (1,) + ((len(spec["low"]),) if len(spec["input_shape"]) == 1 else (len(spec["low"]), 1, 1))
    return (torch.tensor(spec["low"]).reshape(shape), torch.tensor(spec["high"]).reshape(shape))


def make_input(spec, gen, low, high):
    x = torch.randn((spec["batch"],) + tuple(spec["input_shape"]), generator=gen)
    return torch.maximum(torch.minimum(x, high), low)


def activations(model, x):
    """acts[k] = input of module k, acts[L] = output."""
    acts = [x]
    h = x
    with torch.no_grad():
        for m in model:
            h = m(h)
            acts.append(h)
    return acts


def pool_windows(m, a):
    """Windows of a MaxPool2d as [N, C, Ho, Wo, k*k] (padding = -inf), and the flat input index of every entry."""
    k_, s_, p_ = m.kernel_size, m.stride, m.padding
    ap = F.pad(a, (p_, p_, p_, p_), value=-math.inf)
    win = ap.unfold(2, k_, s_).unfold(3, k_, s_)
    win = win.reshape(*win.shape[:4], -1)
    H, W_ = a.shape[2:]
    idx = torch.arange(H * W_, dtype=torch.float64).reshape(1, 1, H, W_)
    idxp = F.pad(idx, (p_, p_, p_, p_), value=-1.0)
    iw = idxp.unfold(2, k_, s_).unfold(3, k_, s_)
    iw = iw.reshape(*iw.shape[:4], -1)
    return win, iw


def quality(model, x):
    """Return (min max-pool gap, number of all-zero max-pool windows, number of windows, min cancellation ratio).

    gap: over all max-pool windows whose maximum is > 0, the difference between the largest and second largest entry
    (an all-zero window -- every ReLU in it dead -- is an exact tie, resolved by PyTorch's first-maximum rule; it is
    counted instead). cancellation ratio: min over all affine pre-activations of |z| / (sum_i |w_i a_i| + |b|)."""
    acts = activations(model, x)
    min_gap, n_zero, n_win, min_cond = math.inf, 0, 0, math.inf
    for k, m in enumerate(model):
        a = acts[k]
        if isinstance(m, torch.nn.MaxPool2d):
            win, _ = pool_windows(m, a)
            top2 = torch.topk(win, 2, dim=-1).values
            check(bool((top2[..., 0] >= 0).all()), "max-pool window with negative maximum")
            live = top2[..., 0] > 0
            n_zero += int((~live).sum())
            n_win += live.numel()
            if live.any():
                min_gap = min(min_gap, float((top2[..., 0] - top2[..., 1])[live].min()))
        elif isinstance(m, torch.nn.Linear):
            z = acts[k + 1]
            terms = a.abs() @ m.weight.abs().T + m.bias.abs()
            min_cond = min(min_cond, float((z.abs() / terms).min()))
        elif isinstance(m, torch.nn.Conv2d):
            z = acts[k + 1]
            terms = F.conv2d(a.abs(), m.weight.abs(), m.bias.abs(), m.stride, m.padding, m.dilation)
            min_cond = min(min_cond, float((z.abs() / terms).min()))
    return min_gap, n_zero, n_win, min_cond


def check_pool_tie_rule(model, x):
    """Assert PyTorch's max-pool picks the FIRST maximum of each window in row-major order (padding skipped)."""
    acts = activations(model, x)
    for k, m in enumerate(model):
        if isinstance(m, torch.nn.MaxPool2d):
            a = acts[k]
            _, ind = F.max_pool2d(a, m.kernel_size, m.stride, m.padding, return_indices=True)
            win, iw = pool_windows(m, a)
            first = torch.argmax((win == win.max(-1, keepdim=True).values).to(torch.int64), dim=-1)  # first True
            expected = torch.gather(iw.expand_as(win), -1, first[..., None])[..., 0].to(torch.int64)
            check(bool((ind == expected).all()), "max-pool tie rule is not 'first maximum in row-major order'")


def layer_json(m):
    if isinstance(m, torch.nn.Linear):
        return {"type": "dense", "weight": tensor_json(m.weight), "bias": tensor_json(m.bias)}
    if isinstance(m, torch.nn.Conv2d):
        return {"type": "conv2d", "weight": tensor_json(m.weight), "bias": tensor_json(m.bias),
                "stride": list(m.stride), "padding": list(m.padding), "dilation": list(m.dilation)}
    if isinstance(m, torch.nn.ReLU):
        return {"type": "relu"}
    if isinstance(m, torch.nn.MaxPool2d):
        def pair(v):
            return list(v) if isinstance(v, (tuple, list)) else [v, v]
        check(m.dilation in (1, (1, 1)) and not m.ceil_mode, "unsupported maxpool options")
        return {"type": "maxpool2d", "kernel": pair(m.kernel_size), "stride": pair(m.stride), "padding": pair(m.padding)}
    if isinstance(m, torch.nn.Flatten):
        return {"type": "flatten"}
    raise TypeError(m)


# ------------------------------------------------------------------------------------------------------------------
# 3. Rules: descriptors read back from the registered hooks, and rebuilt from descriptors
# ------------------------------------------------------------------------------------------------------------------

def _nonlocals(fn):
    return inspect.getclosurevars(fn).nonlocals


def _stabilizer_eps(hook):
    stab_fn = _nonlocals(hook.gradient_mapper)["stabilizer_fn"]
    check(isinstance(stab_fn, Stabilizer) and not stab_fn.clip and not stab_fn.norm_scale,
          "unexpected stabilizer configuration")
    return float(stab_fn.epsilon)


def _zero_params_none(hook):
    # rules must use their default zero_params (None); the internal bias-zeroing of some sub-terms is part of the rule
    for pm in hook.param_modifiers:
        zp = getattr(pm, "zero_params", None)
        check(zp in (None, ["bias"]), f"unexpected zero_params {zp}")


def describe_hook(hook, low_json, high_json):
    if hook is None:
        return {"rule": "gradient"}
    if type(hook) is Pass:
        return {"rule": "pass"}
    _zero_params_none(hook)
    eps = _stabilizer_eps(hook)
    if type(hook) is Epsilon:
        return {"rule": "epsilon", "epsilon": eps}
    if type(hook) is Gamma:
        gamma = float(_nonlocals(hook.param_modifiers[0].modifier)["gamma"])
        return {"rule": "gamma", "gamma": gamma, "stabilizer": eps}
    if type(hook) is AlphaBeta:
        nl = _nonlocals(hook.reducer)
        return {"rule": "alphabeta", "alpha": float(nl["alpha"]), "beta": float(nl["beta"]), "stabilizer": eps}
    if type(hook) is ZPlus:
        return {"rule": "zplus", "stabilizer": eps}
    if type(hook) is ZBox:
        low = _nonlocals(hook.input_modifiers[1])["low"]
        high = _nonlocals(hook.input_modifiers[2])["high"]
        check(tensor_json(low.reshape(low.shape[1:]))["data"] == low_json["data"], "zbox low mismatch")
        check(tensor_json(high.reshape(high.shape[1:]))["data"] == high_json["data"], "zbox high mismatch")
        return {"rule": "zbox", "low": low_json, "high": high_json, "stabilizer": eps}
    if type(hook) is Flat:
        return {"rule": "flat", "stabilizer": eps}
    if type(hook) is WSquare:
        return {"rule": "wsquare", "stabilizer": eps}
    raise TypeError(f"unknown hook {hook}")


def attached_hooks(model):
    """The zennit Hook attached to every module of the Sequential (or None), read from the forward-pre-hooks."""
    res = []
    for m in model:
        hooks = [getattr(h, "__self__", None) for h in m._forward_pre_hooks.values()]
        hooks = [h for h in hooks if isinstance(h, Hook)]
        check(len(hooks) <= 1, "more than one zennit hook on a module")
        res.append(hooks[0] if hooks else None)
    return res


def rule_from_desc(d, low, high):
    r = d["rule"]
    if r == "gradient":
        return None
    if r == "pass":
        return Pass()
    if r == "epsilon":
        return Epsilon(d["epsilon"])
    if r == "gamma":
        return Gamma(d["gamma"], stabilizer=d["stabilizer"])
    if r == "alphabeta":
        return AlphaBeta(d["alpha"], d["beta"], stabilizer=d["stabilizer"])
    if r == "zplus":
        return ZPlus(stabilizer=d["stabilizer"])
    if r == "zbox":
        return ZBox(low, high, stabilizer=d["stabilizer"])
    if r == "flat":
        return Flat(stabilizer=d["stabilizer"])
    if r == "wsquare":
        return WSquare(stabilizer=d["stabilizer"])
    raise ValueError(r)


def name_map_composite(descs, low, high):
    name_map = []
    for i, d in enumerate(descs):
        rule = rule_from_desc(d, low, high)
        if rule is not None:
            name_map.append(((str(i),), rule))
    return NameMapComposite(name_map)


def uniform(rule):
    return lambda low, high, model: LayerMapComposite([(ztypes.Activation, Pass()), (ztypes.Linear, rule)])


def zbox_first(low, high, model):
    return SpecialFirstLayerMapComposite(
        layer_map=[(ztypes.Activation, Pass()), (ztypes.Linear, Epsilon())],
        first_map=[(ztypes.Linear, ZBox(low, high))],
    )


def layered(low, high, model):
    """Montavon et al. 2019 recipe, explicit per-module mapping:
    first affine layer -> ZBox; other Conv2d with conv rank r < ceil(n_conv/2) -> Gamma(0.25), else Epsilon(0.25);
    other Linear -> Epsilon(0) (LRP-0); ReLU -> Pass; max-pool / flatten -> gradient."""
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in model)
    name_map = []
    first_done = False
    conv_rank = 0
    for i, m in enumerate(model):
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            if not first_done:
                rule = ZBox(low, high)
                first_done = True
            elif isinstance(m, torch.nn.Conv2d):
                rule = Gamma(0.25) if conv_rank < math.ceil(n_conv / 2) else Epsilon(0.25)
            else:
                rule = Epsilon(0.0)
            if isinstance(m, torch.nn.Conv2d):
                conv_rank += 1
        elif isinstance(m, torch.nn.ReLU):
            rule = Pass()
        else:
            continue
        name_map.append(((str(i),), rule))
    return NameMapComposite(name_map)


CASES = [
    # name, seed, composite factory, record per-layer relevance
    ("lrp0", "logit", uniform(Epsilon(0.0)), True),
    ("epsilon", "logit", uniform(Epsilon()), True),
    ("epsilon_0.25", "logit", uniform(Epsilon(0.25)), False),
    ("gamma", "logit", uniform(Gamma()), True),
    ("gamma_0", "logit", uniform(Gamma(0.0)), False),
    ("gamma_1", "logit", uniform(Gamma(1.0)), False),
    ("alpha2beta1", "logit", uniform(AlphaBeta(2.0, 1.0)), True),
    ("alpha1beta0", "logit", uniform(AlphaBeta(1.0, 0.0)), False),
    ("zplus", "logit", uniform(ZPlus()), False),
    ("flat", "logit", uniform(Flat()), False),
    ("wsquare", "logit", uniform(WSquare()), False),
    ("zbox_first", "logit", zbox_first, False),
    ("epsilon_gamma_box", "logit", lambda low, high, model: EpsilonGammaBox(low, high), True),
    ("epsilon_plus", "logit", lambda low, high, model: EpsilonPlus(), False),
    ("epsilon_plus_flat", "logit", lambda low, high, model: EpsilonPlusFlat(), False),
    ("epsilon_alpha2_beta1", "logit", lambda low, high, model: EpsilonAlpha2Beta1(), False),
    ("epsilon_alpha2_beta1_flat", "logit", lambda low, high, model: EpsilonAlpha2Beta1Flat(), False),
    ("layered", "logit", layered, False),
    ("epsilon_onehot", "onehot", uniform(Epsilon()), False),
]


def run_zennit(model, composite, x, attr_output, record_layers):
    """Run zennit; return (input relevance, per-module relevance list or None, attached hooks)."""
    saved = {}
    handles = []
    x = x.detach().clone().requires_grad_(True)
    with Gradient(model, composite) as attributor:
        hooks = attached_hooks(model)
        if record_layers:
            # registered AFTER zennit's hooks: sees the module output, grabs the (modified) gradient w.r.t. it
            for k, m in enumerate(model):
                def fwd_hook(mod, inp, out, k=k):
                    out.register_hook(lambda g, k=k: saved.__setitem__(k + 1, g.detach().clone()))
                handles.append(m.register_forward_hook(fwd_hook))
        try:
            _, rel = attributor(x, attr_output)
        finally:
            for h in handles:
                h.remove()
    check(not attached_hooks(model) or all(h is None for h in attached_hooks(model)), "hooks not removed")
    rel = rel.detach().clone()
    layers = None
    if record_layers:
        L = len(model)
        check(sorted(saved) == list(range(1, L + 1)), f"missing per-layer relevance: {sorted(saved)}")
        layers = [rel] + [saved[k] for k in range(1, L + 1)]
    return rel, layers, hooks


def plain_gradient(model, x, grad_out):
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        g, = torch.autograd.grad(out, x, grad_outputs=grad_out)
    return g


def output_seeds(out, target):
    N, C = out.shape
    check(len(target) == N and len(set(target)) == N and all(0 <= t < C for t in target), "bad targets")
    onehot = torch.zeros_like(out)
    onehot[torch.arange(N), torch.tensor(target)] = 1.0
    return {"logit": out * onehot, "onehot": onehot}, onehot


def degenerate_cases(model, x, target, low_t, high_t):
    """Names of cases in which some sample gets an all-zero (or non-finite) input relevance."""
    seeds, _ = output_seeds(activations(model, x)[-1], target)
    bad = []
    for cname, seed_name, factory, _ in CASES:
        rel, _, _ = run_zennit(model, factory(low_t, high_t, model), x, seeds[seed_name], False)
        if not bool(torch.isfinite(rel).all()) or float(rel.flatten(1).abs().max(1).values.min()) < 1e-8:
            bad.append(cname)
    return bad


def generate_network(name, spec):
    low_t, high_t = torch_bounds(spec)
    low_json = tensor_json(low_t.reshape(low_t.shape[1:]))
    high_json = tensor_json(high_t.reshape(high_t.shape[1:]))

    # deterministic seed search: first seed whose network/input pass the quality gates
    rejected = []
    for seed in range(spec["seed"], spec["seed"] + 10000):
        model, gen = build_network(spec, seed)
        x = make_input(spec, gen, low_t, high_t)
        gap, n_zero, n_win, cond = quality(model, x)
        if not (gap > MIN_POOL_GAP and cond > MIN_COND and n_zero <= MAX_ZERO_WINDOWS * n_win):
            rejected.append((seed, f"pool gap {gap:.1e} / all-zero windows {n_zero}/{n_win} / cancellation {cond:.1e}"))
            continue
        dead = degenerate_cases(model, x, spec["target"], low_t, high_t)
        if dead:
            rejected.append((seed, f"all-zero relevance for a sample in {dead}"))
            continue
        break
    else:
        raise RuntimeError(f"{name}: no acceptable seed found")
    if rejected:
        print(f"    rejected {len(rejected)} seed(s) {rejected[0][0]}..{rejected[-1][0]}; last: {rejected[-1][1]}")
    print(f"[{name}] seed {seed}: min max-pool gap {gap:.3e} (all-zero windows: {n_zero} of {n_win}), "
          f"min |z|/sum|terms| {cond:.3e}")
    check_pool_tie_rule(model, x)

    acts = activations(model, x)
    out = acts[-1]
    for k, m in enumerate(model):  # shape chain is checked by the forward pass itself; record it
        print(f"    module {k:2d} {type(m).__name__:10s} in {tuple(acts[k].shape[1:])} -> out {tuple(acts[k + 1].shape[1:])}")
    target = spec["target"]
    seeds, onehot = output_seeds(out, target)

    cases_json = []
    results = {}
    for cname, seed_name, factory, record in CASES:
        attr_output = seeds[seed_name]
        composite = factory(low_t, high_t, model)
        rel, layers, hooks = run_zennit(model, composite, x, attr_output, record and spec.get("record_layers", True))
        descs = [describe_hook(h, low_json, high_json) for h in hooks]
        check(torch.isfinite(rel).all(), f"{name}/{cname}: NaN/inf in relevance")
        check(rel.shape == x.shape, "relevance shape")

        # descriptors -> rules -> same relevance (validates the layer_rules record)
        rel2, _, hooks2 = run_zennit(model, name_map_composite(descs, low_t, high_t), x, attr_output, False)
        check([describe_hook(h, low_json, high_json) for h in hooks2] == descs, f"{name}/{cname}: rebuild descs")
        assert_close(rel2, rel, 1e-12, f"{name}/{cname}: rebuilt-rule relevance")

        if layers is not None:
            for t in layers:
                check(torch.isfinite(t).all(), f"{name}/{cname}: NaN in per-layer relevance")
            assert_close(layers[-1], attr_output, 0.0, f"{name}/{cname}: top relevance", rel=False)
            for k in range(len(model)):
                check(layers[k].shape == acts[k].shape, "per-layer shape")
                sub = torch.nn.Sequential(*list(model)[k:])
                sub_rel, _, _ = run_zennit(sub, name_map_composite(descs[k:], low_t, high_t), acts[k], attr_output,
                                           False)
                assert_close(sub_rel, layers[k], 1e-12, f"{name}/{cname}: sub-network check at module {k}")

        results[cname] = rel
        case = {"name": cname, "seed": seed_name, "layer_rules": descs, "relevance": tensor_json(rel)}
        if layers is not None:
            case["layers"] = [tensor_json(t) for t in layers]
        cases_json.append(case)
        print(f"    case {cname:26s} sum R_in per sample = {[round(float(v), 6) for v in rel.flatten(1).sum(1)]}")

    # ---- sanity assertions ----
    for cname in ("lrp0", "epsilon"):
        check(float(results[cname].abs().max()) > 1e-6, f"{name}/{cname}: relevance is all zero")
    # LRP-0 == gradient * input (biases included) for R_out = logit
    gi = plain_gradient(model, x, onehot) * x
    err = assert_close(results["lrp0"], gi, 1e-10, f"{name}: lrp0 == gradient*input")
    print(f"    lrp0 == gradient*input: max diff {err:.2e}")
    # LRP-0 on a bias-free copy conserves relevance
    nobias = copy.deepcopy(model)
    with torch.no_grad():
        for m in nobias:
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.bias.zero_()
    out_nb = activations(nobias, x)[-1]
    for seed_name, R in (("logit", out_nb * onehot), ("onehot", onehot)):
        rel_nb, _, _ = run_zennit(nobias, uniform(Epsilon(0.0))(low_t, high_t, nobias), x, R, False)
        check(torch.isfinite(rel_nb).all(), "NaN in bias-free LRP-0")
        err = assert_close(rel_nb.flatten(1).sum(1), R.sum(1), 1e-10, f"{name}: conservation ({seed_name})")
        print(f"    bias-free LRP-0 conservation ({seed_name}): max |sum R_in - sum R_out| = {err:.2e}")
    # epsilon_onehot is epsilon with R scaled by 1/logit per sample (all rules are linear in R) -- approx., since
    # epsilon's stabilizer does not scale; just check it is finite and non-zero
    check(float(results["epsilon_onehot"].abs().max()) > 1e-6, "epsilon_onehot all zero")

    fixture = {
        "generator": GENERATOR,
        "zennit_version": _pkg_version("zennit"),
        "torch_version": torch.__version__,
        "name": name,
        "input_shape": list(spec["input_shape"]),
        "layers": [layer_json(m) for m in model],
        "low": low_json,
        "high": high_json,
        "input": tensor_json(x),
        "output": tensor_json(out),
        "target": list(target),
        "cases": cases_json,
    }
    return fixture


def _pkg_version(pkg):
    from importlib.metadata import version
    return version(pkg)


# ------------------------------------------------------------------------------------------------------------------
# 4. Independent replay from the JSON alone (no zennit): what the Rust side has to do
# ------------------------------------------------------------------------------------------------------------------

def _t(tj):
    return torch.tensor(tj["data"], dtype=torch.float64).reshape(tj["shape"])


def _affine_ops(layer):
    if layer["type"] == "dense":
        def fwd(a, W):
            return a @ W.T
    else:
        st, pd, dl = layer["stride"], layer["padding"], layer["dilation"]

        def fwd(a, W):
            return F.conv2d(a, W, None, st, pd, dl)

    def vjp(a_like, W, s):
        a0 = torch.zeros_like(a_like, requires_grad=True)
        with torch.enable_grad():
            g, = torch.autograd.grad(fwd(a0, W), a0, grad_outputs=s)
        return g
    return fwd, vjp


def _bias_shape(b, layer):
    return b if layer["type"] == "dense" else b[None, :, None, None]


def replay_affine(rule, layer, a, R):
    fwd, vjp_ = _affine_ops(layer)
    W = _t(layer["weight"])
    b = _bias_shape(_t(layer["bias"]), layer)

    def vjp(W_, s):
        return vjp_(a, W_, s)

    def st(z, eps):
        return z + eps * torch.where(z >= 0, 1.0, -1.0)
    Wp, Wn, ap, an = W.clamp(min=0), W.clamp(max=0), a.clamp(min=0), a.clamp(max=0)
    r = rule["rule"]
    if r == "epsilon":
        s = R / st(fwd(a, W) + b, rule["epsilon"])
        return a * vjp(W, s)
    if r == "gamma":
        g, eps = rule["gamma"], rule["stabilizer"]
        Wup, Wdn = W + g * Wp, W + g * Wn
        z = fwd(a, W) + b
        dpos = fwd(ap, Wup) + fwd(an, Wdn) + b + g * b.clamp(min=0)
        dneg = fwd(ap, Wdn) + fwd(an, Wup) + b + g * b.clamp(max=0)
        spos = (z > 0) * R / st(dpos, eps)
        sneg = (z < 0) * R / st(dneg, eps)
        return ap * vjp(Wup, spos) + an * vjp(Wdn, spos) + ap * vjp(Wdn, sneg) + an * vjp(Wup, sneg)
    if r in ("alphabeta", "zplus"):
        al, be = (rule["alpha"], rule["beta"]) if r == "alphabeta" else (1.0, 0.0)
        eps = rule["stabilizer"]
        sa = R / st(fwd(ap, Wp) + fwd(an, Wn) + b.clamp(min=0), eps)
        si = R / st(fwd(ap, Wn) + fwd(an, Wp) + b.clamp(max=0), eps)
        res = al * (ap * vjp(Wp, sa) + an * vjp(Wn, sa))
        return res - be * (ap * vjp(Wn, si) + an * vjp(Wp, si)) if be != 0 else res
    if r == "zbox":
        lo = _t(rule["low"])[None].expand_as(a)
        hi = _t(rule["high"])[None].expand_as(a)
        s = R / st(fwd(a - lo, Wp) + fwd(a - hi, Wn), rule["stabilizer"])
        return (a - lo) * vjp(Wp, s) + (a - hi) * vjp(Wn, s)
    if r == "flat":
        ones_w = torch.ones_like(W)
        s = R / st(fwd(torch.ones_like(a), ones_w), rule["stabilizer"])
        return vjp(ones_w, s)
    if r == "wsquare":
        s = R / st(fwd(torch.ones_like(a), W ** 2) + b ** 2, rule["stabilizer"])
        return vjp(W ** 2, s)
    raise ValueError(r)


def replay_fixture(fx):
    """Recompute every case of a fixture from its JSON content only; return the max relative deviation."""
    layers = fx["layers"]
    x = _t(fx["input"])
    acts = [x]
    for layer in layers:  # forward pass
        a = acts[-1]
        t = layer["type"]
        if t == "dense":
            acts.append(a @ _t(layer["weight"]).T + _t(layer["bias"]))
        elif t == "conv2d":
            acts.append(F.conv2d(a, _t(layer["weight"]), _t(layer["bias"]), layer["stride"], layer["padding"],
                                 layer["dilation"]))
        elif t == "relu":
            acts.append(a.clamp(min=0))
        elif t == "maxpool2d":
            acts.append(F.max_pool2d(a, layer["kernel"], layer["stride"], layer["padding"]))
        elif t == "flatten":
            acts.append(a.reshape(a.shape[0], -1))
    worst = assert_close(acts[-1], _t(fx["output"]), 1e-12, f"{fx['name']}: replay forward")
    out = acts[-1]
    N = out.shape[0]
    onehot = torch.zeros_like(out)
    onehot[torch.arange(N), torch.tensor(fx["target"])] = 1.0
    for case in fx["cases"]:
        R = out * onehot if case["seed"] == "logit" else onehot
        rels = [None] * len(layers) + [R]
        for k in range(len(layers) - 1, -1, -1):
            layer, rule, a = layers[k], case["layer_rules"][k], acts[k]
            t = layer["type"]
            if t in ("dense", "conv2d"):
                R = replay_affine(rule, layer, a, R)
            elif t == "relu":
                check(rule["rule"] == "pass", "relu rule")
            elif t == "maxpool2d":  # winner takes all, first maximum in row-major order
                check(rule["rule"] == "gradient", "maxpool rule")
                _, ind = F.max_pool2d(a, layer["kernel"], layer["stride"], layer["padding"], return_indices=True)
                R = torch.zeros_like(a).flatten(2).scatter_add_(2, ind.flatten(2), R.flatten(2)).reshape(a.shape)
            elif t == "flatten":
                check(rule["rule"] == "gradient", "flatten rule")
                R = R.reshape(a.shape)
            rels[k] = R
        worst = max(worst, assert_close(R, _t(case["relevance"]), 1e-10, f"{fx['name']}/{case['name']}: replay"))
        if "layers" in case:
            for k, tj in enumerate(case["layers"]):
                worst = max(worst, assert_close(rels[k], _t(tj), 1e-10, f"{fx['name']}/{case['name']}: replay L{k}"))
    return worst



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures)")
    ap.add_argument("--only", nargs="*", default=None, help="subset of networks (mlp cnn deep wide)")
    args = ap.parse_args()

    print(f"zennit {_pkg_version('zennit')}, torch {torch.__version__}, numpy {np.__version__}")
    print("verifying per-rule formulas on a single dense layer:")
    verify_dense_formulas()

    os.makedirs(args.out, exist_ok=True)
    for name, spec in NETWORKS.items():
        if args.only and name not in args.only:
            continue
        fixture = generate_network(name, spec)
        path = os.path.join(args.out, f"lrp_{name}.json")
        text = json.dumps(fixture, separators=(",", ":"), allow_nan=False)
        worst = replay_fixture(json.loads(text))
        print(f"    independent replay from the JSON (no zennit): max deviation {worst:.2e}")
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"wrote {os.path.normpath(path)} ({len(text) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
