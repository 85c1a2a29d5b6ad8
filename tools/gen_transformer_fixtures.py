#!/usr/bin/env python3
"""Generate the transformer reference fixtures tests/fixtures/transformers/tiny_{vit,bert}.{json,onnx,dynamo.onnx}:
AttnLRP and CP-LRP relevances from lxt (Achtibat et al., "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation
for Transformers", ICML 2024) on two tiny transformers, captum's DeepLift on them (informational), and ONNX exports of
both networks by both PyTorch exporters.

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch lxt==2.1 captum onnx onnxruntime onnxscript numpy
    ~/venv/bin/python tools/gen_transformer_fixtures.py             # writes tests/fixtures/transformers/ (~15 s)
    ~/venv/bin/python tools/gen_transformer_fixtures.py --out DIR   # write somewhere else

Produced with torch 2.15.0, lxt 2.1 (which pulls transformers 4.57), captum 0.9.0, onnx 1.23, onnxruntime 1.32,
onnxscript 0.7 (the versions are read from the installed packages and written into every JSON file). Deterministic:
fixed seeds, float64 everywhere, one CPU thread: a rerun gives byte-identical files (JSON and ONNX); no file is
larger than 400 KB (the JSON files are about 100 KB, the ONNX files 18-42 KB).

Networks (float64, eval mode, written from plain torch modules and functions so that every operation is visible;
module names as in torchvision's VisionTransformer / Hugging Face's BertModel, so state_dict names are meaningful)
--------
Linear/Conv2d weights ~ N(0, 1/fan_in), biases ~ N(0, 0.2^2); every LayerNorm has weight ~ U(0.5, 1.5) and bias
~ N(0, 0.2^2); class token, word embeddings ~ N(0, 1), position embeddings ~ N(0, 0.5^2). Parameters and inputs are
rounded to 4 significant digits (everything computed is written in full). Hidden size 8, 2 heads of size 4, MLP 16,
2 encoder blocks, 3 classes, batch N = 2.

* tiny_vit  input x [N, 3, 8, 8] ~ N(0, 1). conv_proj = Conv2d(3, 8, kernel 4, stride 4) -> [N, 8, 2, 2]
            -> flatten(2) -> transpose(1, 2) -> [N, 4, 8]; cat(class_token [1, 1, 8] expanded, tokens) -> [N, 5, 8];
            + encoder.pos_embedding [1, 5, 8]; 2 pre-LN blocks encoder.layers.{i}:
                x = x + self_attention(ln_1(x));  x = x + mlp(ln_2(x))
            encoder.ln (final LayerNorm); token 0 -> heads.head = Linear(8, 3). All LayerNorms eps 1e-6.
            mlp = Sequential(Linear(8, 16) "mlp.0", GELU "mlp.1" (exact, erf), Dropout "mlp.2", Linear(16, 8) "mlp.3",
            Dropout "mlp.4") as torchvision's MLPBlock; the Dropouts are never called (eval: identity).
* tiny_bert input ids [N, 6] int64 in [0, 20). embeddings.word_embeddings [20, 8] (the explained input is its output
            e [N, 6, 8]); + embeddings.position_embeddings.weight [6, 8] (a constant: positions 0..5, no token types);
            embeddings.LayerNorm (eps 1e-12); 2 post-LN blocks encoder.layer.{i}:
                x = attention.output.LayerNorm(x + attention.output.dense(attention.self(x)))
                x = output.LayerNorm(x + output.dense(GELU(intermediate.dense(x))))      (intermediate size 16)
            pooler: token 0 -> pooler.dense Linear(8, 8) -> tanh (pooler.activation) -> classifier Linear(8, 3).
            No attention mask, no dropout.
* attention (both): q, k, v = Linear(8, 8) with bias (vit: self_attention.{q,k,v}, out_proj; bert:
            attention.self.{query,key,value}, attention.output.dense) -> reshape [N, T, 2, 4] -> transpose(1, 2)
            -> [N, 2, T, 4]; scores = (q * 0.5) @ k^T (the scale 1/sqrt(4) multiplies q before the product);
            probs = softmax(scores, -1) (an nn.Softmax module, "...softmax"); ctx = probs @ v -> transpose(1, 2)
            -> reshape [N, T, 8] -> output Linear.

The draw is the first seed (from a fixed start) for which every division of the epsilon-0 rules is well conditioned:
|z| / sum|terms| >= 1e-4 at every Linear/conv output, residual/position sum, matmul output and LayerNorm output
(LayerNorm: |y| / (|w (x - mean) / std| + |b|)), for both cases (checked by the numpy replay below).

Cases (every sample; the explained output is the logit of the sample's target; starting relevance R = logit * one-hot)
-----
* attn_lrp  lxt's EXPLICIT rule functions (lxt.explicit.functional), every epsilon passed explicitly as 0:
            linear_epsilon(x, W, b, epsilon=0) for every Linear (q/k/v, out_proj / attention.output.dense, the MLPs,
            heads.head, pooler.dense, classifier) and for conv_proj written as F.unfold(x, 4, stride=4) (non-overlapping
            patches, C-major (c, kh, kw) columns) + linear_epsilon with W.reshape(8, 48): the conv epsilon rule;
            matmul(a, b, epsilon=0) for both attention products (each factor gets half: Proposition 3.3); softmax(s, -1)
            (R_in = s * (R - p * sum R)); add2(a, b, epsilon=0) for the residual sums and for the position-embedding
            addition (the constant's share is dropped, like a bias); mul2(q, 0.5) for the scale (one tensor input:
            relevance passes unchanged); lxt.explicit.rules.identity for GELU and tanh (relevance passes unchanged);
            LayerNorm by lxt.explicit.functional.layer_norm_grad_fn.apply(x, w, b, eps, 0.0) -- the Function behind
            lxt's `layer_norm`, called directly because `layer_norm` does not forward an epsilon and the Function's
            default is 1e-6 (the effect of that default is recorded: "layer_norm_default_epsilon_effect"); it is the
            epsilon rule on y = w (x - mean) / std + b with std constant. layer_norm_grad_fn builds its inner graph on
            the tensor it is given and calls torch.autograd.grad(y, x) in backward, which also fires a retain_grad
            hook on x (x.grad then holds the raw J^T (R / y) plus the relevance): the script passes x.view_as(x) so
            that the tapped tensor stays outside that inner call (the relevances are unaffected either way; only a
            hook placed directly on the layer norm's input sees the extra term). The class-token concatenation and the
            reshapes/transposes/token selection pass relevance by their gradient: the class token's slot relevance is
            dropped (a constant), like the bias shares.
* cp_lrp    CP-LRP (Ali et al., ICML 2022): the same, but q and k are detached (lxt.efficient.rules.stop_gradient)
            before the score product, so nothing reaches the softmax; probs are constants and ctx = probs @ v is linear
            in v: R_v = v * (probs^T @ (R / ctx)), computed with lxt's linear_epsilon(v[n, h]^T, probs[n, h], None, 0)
            per (sample, head). lxt's explicit `matmul` cannot be used for this: it always gives each factor half and
            drops the constant's half ("cp_lrp_lxt_matmul_variant" records what it would give). This is the same as
            lxt's EFFICIENT CP-LRP semantics (patches.cp_wrap_attention_forward: stop_gradient on q, k, nothing on v),
            which is checked.

Recorded per case: "relevance" at the model input (vit: [N,3,8,8]; bert: at the word-embedding output [N,6,8] and
summed over the features per token, "relevance_tokens" [N,6]); "per_node": relevance at named points (below);
"conservation": the target logit, sum of the input relevance and of the relevance at each block input, per sample.
Point relevances are read with tensor hooks: a clone of the tensor is inserted at the point and retain_grad()
collects what arrives there (lxt's explicit Functions propagate relevance as the gradient). A point placed on a
tensor with several readers gets the sum over all of them; "<ln>.input" is the LayerNorm's own share (the clone
sits between the tensor and the LayerNorm only). In cp_lrp the detached quantities (q, k, scores, probs) get zeros.

Checks (the script fails loudly otherwise)
------
1. The explicit-mode and efficient-mode models give the plain model's logits (1e-12).
2. lxt's EFFICIENT mode, written as lxt's patches do it (gradient x input; lxt.efficient.patches.layer_norm_forward
   (stop_gradient on std), identity_rule_implicit on GELU and tanh, divide_gradient on the attention's q and k by 4
   and v by 2 as patches.wrap_attention_forward does; start gradient = one-hot, so that R_out = logit), gives the
   explicit attn_lrp relevances at the input and at every point (1e-8 relative). At the softmax points gradient x
   input is 2x the explicit relevance with this placement (the context product's 1/2 is applied at v and, for the
   softmax path, at q/k), so those are compared after halving. A second placement, divide_gradient by 2 on the
   scores and on the context (lxt.efficient.models.bert), matches at every point without correction. Efficient
   CP-LRP (stop_gradient on q and k) equals explicit cp_lrp (1e-8). The max deviations are recorded
   ("efficient_vs_explicit"): about 1.3e-9, all of it from identity_rule_implicit, which uses f(x) / (x + 1e-10) as
   the gradient; the same runs with identity_rule_implicit_fn.apply(fn, x, 0.0) agree to < 2e-15 (asserted 1e-12).
3. An independent numpy replay reading only the JSON (weights, inputs, targets) runs the forward pass (logits, 1e-12)
   and the textbook rules -- epsilon rule R_in = x * W^T (R / z) for Linear/conv (im2col); matmul z = A @ B:
   R_A = A * ((R / (2z)) @ B^T), R_B = B * (A^T @ (R / (2z))); softmax R_in = s * (R - p * sum R); LayerNorm
   R_in = x * J^T (R / y) with J the Jacobian at constant std; a + b: R_a = a * R / (a + b); CP-LRP: R_v =
   v * (P^T @ (R / ctx)) -- and reproduces the input relevance and every point of both cases on both networks (1e-10).
4. No NaN/inf; no sample with an all-zero input relevance.
5. ONNX: every file passes onnx.checker; onnxruntime reproduces torch's float64 logits within 1e-5 relative (to the
   largest logit) on the fixture's batch of 2 and on a batch of 3 when the batch axis is dynamic. onnxruntime's CPU
   provider lacks float64 kernels for some operators (the script tries the float64 file first; onnxruntime 1.32 has
   no float64 Conv nor Erf, so every file has one); a float32 twin *.f32.onnx with the same nodes (checked) is
   written and run instead, and the float64 error is recorded.

DeepLIFT (informational): captum 0.9.0 DeepLift (eps 1e-10) on the plain model (vit: on x with a zero baseline; bert:
on the word-embedding output, through a wrapper, with a zero baseline and with the embedding of token id 0 at every
position). captum has Rescale rules for nn.Softmax and nn.Tanh modules only (its softmax rule subtracts the mean
multiplier over the WHOLE tensor, all samples, heads and rows, not per row); GELU, LayerNorm and the products of two
computed tensors get the plain gradient, so summation-to-delta does not hold: the attributions and convergence deltas
are recorded as captum returns them (an error would be recorded as its string).

ONNX files (float64 weights: the JSON's exactly)
  tiny_{vit,bert}.onnx         torch.onnx.export(dynamo=False, opset_version=17), input "x" (float64 [batch,3,8,8])
                               or "ids" (int64 [batch,6]), output "logits", dynamic batch axis, node names from the
                               module scopes (e.g. /encoder/layers.0/self_attention/q/MatMul; every container module
                               is called in forward for this), Linear weights pre-transposed by constant folding
                               (initializers onnx::MatMul_*) except for the 2-D Gemm ones
  tiny_{vit,bert}.dynamo.onnx  torch.onnx.export(dynamo=True, opset_version=18, external_data=False, dynamic_shapes=
                               batch), every metadata_props (stack traces) removed, nothing else; node names are
                               the exporter's (node_conv2d, node_layer_norm_1, node_MatMul_12, ...)
  *.f32.onnx                   float32 twins where onnxruntime lacks a float64 kernel
Every file's sorted operator list, opset, dtype and onnxruntime logits are in the JSON ("onnx").

JSON (a tensor T is {"shape": [...], "data": [flat, C order]}; floats are Python reprs)
  generator, versions, name, seed, config, x (vit) | ids (bert, integers), targets, logits T[N,3],
  weights {state_dict name: T} (PyTorch layouts: Linear [out, in], Conv2d [out, in, kh, kw], Embedding [num, dim]),
  rules {op name: {"rule", "lxt", "epsilon"?}} per case, cases {"attn_lrp", "cp_lrp"}: {relevance, (relevance_tokens),
  per_node {point: T}, conservation}, efficient_vs_explicit, numpy_replay, cp_lrp_lxt_matmul_variant,
  layer_norm_default_epsilon_effect, deeplift, onnx, notes. tools/README.md lists the point names and shapes.
"""
import argparse
import collections
import copy
import json
import math
import os
import sys
import warnings
from importlib.metadata import version as pkg_version

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import lxt.explicit.functional as lxf
from lxt.explicit.rules import identity as lxt_identity
from lxt.efficient.patches import layer_norm_forward as lxt_layer_norm_forward
from lxt.efficient.rules import divide_gradient, identity_rule_implicit, identity_rule_implicit_fn, stop_gradient

from captum.attr import DeepLift

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
warnings.filterwarnings("ignore")

GENERATOR = "tools/gen_transformer_fixtures.py"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "transformers")

BATCH = 2
HIDDEN, HEADS, HEAD_DIM, MLP = 8, 2, 4, 16
LAYERS, CLASSES = 2, 3
SCALE = 0.5                      # 1 / sqrt(HEAD_DIM), multiplies q before the score product
VIT_LN_EPS, BERT_LN_EPS = 1e-6, 1e-12
VOCAB, SEQ = 20, 6
BIAS_STD = 0.2
MIN_COND = 1e-4
TARGETS = {"tiny_vit": [2, 0], "tiny_bert": [1, 2]}
SEED_START = {"tiny_vit": 1000, "tiny_bert": 2000}
DL_EPS = 1e-10
ORT_TOL = 1e-5
MAX_FILE = 400_000


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def max_rel(a, b):
    """max|a - b| / max|b| (max|b| = 0: the absolute deviation)."""
    a = np.asarray(a.detach() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach() if isinstance(b, torch.Tensor) else b, dtype=np.float64)
    check(a.shape == b.shape, f"shape {a.shape} != {b.shape}")
    check(np.all(np.isfinite(a)) and np.all(np.isfinite(b)), "non-finite values")
    scale = float(np.abs(b).max()) if b.size else 0.0
    dev = float(np.abs(a - b).max()) if a.size else 0.0
    return dev / scale if scale > 0 else dev


def assert_close(a, b, tol, what):
    err = max_rel(a, b)
    check(err <= tol, f"{what}: max relative deviation {err:.3e} > {tol:.1e}")
    return err


def tensor_json(t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a = np.ascontiguousarray(a, dtype=np.float64)
    check(np.all(np.isfinite(a)), "refusing to write a non-finite tensor")
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def int_tensor_json(t):
    a = np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.int64)
    return {"shape": list(a.shape), "data": [int(v) for v in a.reshape(-1)]}


def _np(tj):
    return np.asarray(tj["data"], dtype=np.float64).reshape(tj["shape"])


def short(t):
    """Round to 4 significant decimal digits (parameters and inputs only: short reprs, small files)."""
    return torch.tensor([float(f"{v:.4g}") for v in t.flatten().tolist()]).reshape(t.shape)


# ------------------------------------------------------------------------------------------------------------------
# 1. The rule context: one forward pass, five modes
# ------------------------------------------------------------------------------------------------------------------

class Ctx:
    """What the rule-carrying operations do. mode: "plain" (torch as is: ONNX export, captum), "attn_lrp"/"cp_lrp"
    (lxt explicit Functions, relevance = gradient), "eff_attn_lrp"/"eff_cp_lrp" (lxt efficient: gradient x input).
    eff_placement: "qkv" (divide_gradient on q, k by 4 and v by 2, lxt.efficient.patches.wrap_attention_forward) or
    "products" (divide_gradient by 2 on scores and context, lxt.efficient.models.bert)."""

    def __init__(self, mode="plain", eff_placement="qkv", lxt_layer_norm=False, cp_lxt_matmul=False,
                 eff_identity_eps0=False):
        check(mode in ("plain", "attn_lrp", "cp_lrp", "eff_attn_lrp", "eff_cp_lrp"), mode)
        self.mode, self.eff_placement = mode, eff_placement
        self.lxt_layer_norm = lxt_layer_norm      # use lxt's public layer_norm (its Function's default epsilon 1e-6)
        self.cp_lxt_matmul = cp_lxt_matmul        # CP-LRP with lxt's explicit matmul on (probs const, v)
        self.eff_identity_eps0 = eff_identity_eps0  # identity_rule_implicit_fn with epsilon 0 instead of 1e-10
        self.taps = collections.OrderedDict()
        self.rules = collections.OrderedDict()

    explicit = property(lambda s: s.mode in ("attn_lrp", "cp_lrp"))
    efficient = property(lambda s: s.mode.startswith("eff_"))
    cp = property(lambda s: s.mode.endswith("cp_lrp"))
    plain = property(lambda s: s.mode == "plain")

    def rule(self, name, **kw):
        if self.explicit:
            self.rules[name] = kw

    def tap(self, name, t):
        """Insert a clone at a point and collect what arrives there (plain mode: nothing)."""
        if self.plain:
            return t
        check(name not in self.taps, f"point {name} tapped twice")
        if not t.requires_grad:          # detached (CP-LRP: q, k, scores, probs): no relevance
            self.taps[name] = t
            return t
        c = t.clone()
        c.retain_grad()
        self.taps[name] = c
        return c

    def relevance(self, name):
        t = self.taps[name]
        if t.grad is None:
            return torch.zeros_like(t)
        return t.grad.detach().clone() if self.explicit else (t * t.grad).detach()

    # --- operations ---------------------------------------------------------------------------------------------
    def linear(self, name, m, x):
        if self.explicit:
            self.rule(name, rule="epsilon", lxt="lxt.explicit.functional.linear_epsilon", epsilon=0.0)
            return lxf.linear_epsilon(x, m.weight, m.bias, epsilon=0.0)
        return m(x)

    def patch_conv(self, name, m, x):
        """Conv2d with kernel == stride (non-overlapping patches) -> [N, L, out] tokens, L in row-major order."""
        if self.explicit:
            self.rule(name, rule="epsilon", epsilon=0.0,
                      lxt="lxt.explicit.functional.linear_epsilon on F.unfold(x, kernel, stride=kernel) patches, "
                          "weight.reshape(out, -1)")
            k, s = m.kernel_size, m.stride
            check(k == s and m.padding == (0, 0) and m.dilation == (1, 1) and m.groups == 1, "patch conv only")
            cols = F.unfold(x, kernel_size=k, stride=s).transpose(1, 2)           # [N, L, C*kh*kw]
            return lxf.linear_epsilon(cols, m.weight.reshape(m.out_channels, -1), m.bias, epsilon=0.0)
        return m(x).flatten(2).transpose(1, 2)

    def act(self, name, m, x):
        if self.explicit:
            self.rule(name, rule="identity", lxt="lxt.explicit.rules.identity")
            return lxt_identity(m, x)
        if self.efficient and self.eff_identity_eps0:
            return identity_rule_implicit_fn.apply(m, x, 0.0)
        if self.efficient:
            return identity_rule_implicit(m, x)        # lxt: gelu(x) / (x + 1e-10) as the gradient
        return m(x)

    def add(self, name, a, b, constant_b=False):
        if self.explicit:
            self.rule(name, rule="epsilon", lxt="lxt.explicit.functional.add2", epsilon=0.0,
                      **({"note": "second summand a constant: its share is dropped"} if constant_b else {}))
            return lxf.add2(a, b.expand_as(a), epsilon=0.0)
        return a + b

    def mul_const(self, name, x, c):
        if self.explicit and x.requires_grad:
            self.rule(name, rule="identity (multiplication by a constant)", lxt="lxt.explicit.functional.mul2",
                      constant=c)
            return lxf.mul2(x, c)
        return x * c

    def matmul(self, name, a, b):
        if self.explicit and (a.requires_grad or b.requires_grad):
            self.rule(name, rule="matmul (epsilon + uniform: each factor half)", lxt="lxt.explicit.functional.matmul",
                      epsilon=0.0)
            return lxf.matmul(a, b, epsilon=0.0)
        if self.explicit:
            self.rule(name, rule="none (q and k detached: no relevance)")
        return torch.matmul(a, b)

    def const_matmul(self, name, p, v):
        """CP-LRP's probs @ v with probs constant (explicit mode)."""
        check(not p.requires_grad, "CP-LRP: probs must be constant")
        if self.cp_lxt_matmul:
            self.rule(name, rule="matmul (lxt, constant factor: its half dropped)",
                      lxt="lxt.explicit.functional.matmul",
                      epsilon=0.0)
            return lxf.matmul(p, v, epsilon=0.0)
        self.rule(name, rule="epsilon (probs constant)", epsilon=0.0,
                  lxt="lxt.explicit.functional.linear_epsilon(v[n, h]^T, probs[n, h], None, 0) per (sample, head)")
        n, h = p.shape[:2]
        rows = [torch.stack([lxf.linear_epsilon(v[i, j].transpose(0, 1), p[i, j], None, epsilon=0.0).transpose(0, 1)
                             for j in range(h)]) for i in range(n)]
        return torch.stack(rows)

    def softmax(self, name, m, s):
        if self.explicit and s.requires_grad:
            self.rule(name, rule="softmax (Proposition 3.1)", lxt="lxt.explicit.functional.softmax")
            return lxf.softmax(s, m.dim)
        if self.explicit:
            self.rule(name, rule="none (q and k detached: constant)")
        return m(s)

    def layer_norm(self, name, m, x):
        if self.explicit:
            if self.lxt_layer_norm:
                self.rule(name, rule="epsilon (std constant)", lxt="lxt.explicit.functional.layer_norm", epsilon=1e-6)
                return lxf.layer_norm(x.view_as(x), m.weight, m.bias, m.eps)
            self.rule(name, rule="epsilon (std constant)", epsilon=0.0,
                      lxt="lxt.explicit.functional.layer_norm_grad_fn.apply(x, weight, bias, eps, 0.0)")
            # x.view_as(x): layer_norm_grad_fn builds its inner graph on the tensor it is given and calls
            # torch.autograd.grad(y, x) in backward, which also fires x's retain_grad hook (x.grad would get the raw
            # J^T (R / y) on top of the relevance); the alias keeps the tapped tensor out of that inner call
            return lxf.layer_norm_grad_fn.apply(x.view_as(x), m.weight, m.bias, m.eps, 0.0)
        if self.efficient:
            return lxt_layer_norm_forward(m, x)
        return m(x)

    def attention_inputs(self, q, k, v):
        """After the head split: what CP-LRP / lxt's efficient patches do to q, k, v."""
        if self.cp:
            return stop_gradient(q), stop_gradient(k), v
        if self.efficient and self.eff_placement == "qkv":
            return divide_gradient(q, 4), divide_gradient(k, 4), divide_gradient(v, 2)
        return q, k, v

    def after_product(self, t):
        if self.efficient and not self.cp and self.eff_placement == "products":
            return divide_gradient(t, 2)
        return t


PLAIN = Ctx("plain")


def heads_split(t, n, tokens):
    return t.reshape(n, tokens, HEADS, HEAD_DIM).transpose(1, 2)


def attention_core(ctx, prefix, q, k, v, softmax_module, record_qkv):
    """q, k, v: Linear outputs [N, T, 8] -> context [N, T, 8]."""
    n, tokens, _ = q.shape
    if record_qkv:
        q = ctx.tap(f"{prefix}.{record_qkv[0]}.output", q)
        k = ctx.tap(f"{prefix}.{record_qkv[1]}.output", k)
        v = ctx.tap(f"{prefix}.{record_qkv[2]}.output", v)
    q, k, v = ctx.attention_inputs(heads_split(q, n, tokens), heads_split(k, n, tokens), heads_split(v, n, tokens))
    scores = ctx.matmul(f"{prefix}.matmul", ctx.mul_const(f"{prefix}.mul", q, SCALE), k.transpose(-1, -2))
    scores = ctx.tap(f"{prefix}.softmax.input", ctx.after_product(scores))
    probs = ctx.tap(f"{prefix}.softmax.output", ctx.softmax(f"{prefix}.softmax", softmax_module, scores))
    if ctx.explicit and ctx.cp:
        out = ctx.const_matmul(f"{prefix}.matmul_1", probs, v)
    else:
        out = ctx.after_product(ctx.matmul(f"{prefix}.matmul_1", probs, v))
    return out.transpose(1, 2).reshape(n, tokens, HEADS * HEAD_DIM)


# ------------------------------------------------------------------------------------------------------------------
# 2. The networks
# ------------------------------------------------------------------------------------------------------------------
# Every container has a forward and is called (not only its children), so that the TorchScript exporter's node names
# carry the full module path (/encoder/layers.0/self_attention/q/MatMul). forward(x, ctx, prefix): prefix is the
# module's state_dict name, used for the point and rule names.

class ViTSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.softmax = nn.Softmax(dim=-1)
        self.out_proj = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x, ctx, prefix, record_qkv=False):
        q = ctx.linear(f"{prefix}.q", self.q, x)
        k = ctx.linear(f"{prefix}.k", self.k, x)
        v = ctx.linear(f"{prefix}.v", self.v, x)
        a = attention_core(ctx, prefix, q, k, v, self.softmax, ("q", "k", "v") if record_qkv else None)
        return ctx.linear(f"{prefix}.out_proj", self.out_proj, a)


class MLPBlock(nn.Sequential):
    """torchvision's MLPBlock: Linear "0", GELU "1", Dropout "2", Linear "3", Dropout "4" (the Dropouts are not
    called: identity in eval)."""

    def __init__(self):
        super().__init__(nn.Linear(HIDDEN, MLP), nn.GELU(), nn.Dropout(0.0), nn.Linear(MLP, HIDDEN), nn.Dropout(0.0))

    def forward(self, x, ctx, prefix):
        h = ctx.linear(f"{prefix}.0", self[0], x)
        h = ctx.act(f"{prefix}.1", self[1], h)
        return ctx.linear(f"{prefix}.3", self[3], h)


class ViTEncoderBlock(nn.Module):
    """torchvision's EncoderBlock (pre-LN), attention with separate q/k/v."""

    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(HIDDEN, eps=VIT_LN_EPS)
        self.self_attention = ViTSelfAttention()
        self.ln_2 = nn.LayerNorm(HIDDEN, eps=VIT_LN_EPS)
        self.mlp = MLPBlock()

    def forward(self, x, ctx, prefix):
        x = ctx.tap(f"{prefix}.input", x)
        h = ctx.layer_norm(f"{prefix}.ln_1", self.ln_1, ctx.tap(f"{prefix}.ln_1.input", x))
        h = self.self_attention(h, ctx, f"{prefix}.self_attention", record_qkv=prefix.endswith(".0"))
        x = ctx.tap(f"{prefix}.add.output", ctx.add(f"{prefix}.add", x, h))
        h = ctx.layer_norm(f"{prefix}.ln_2", self.ln_2, ctx.tap(f"{prefix}.ln_2.input", x))
        h = self.mlp(h, ctx, f"{prefix}.mlp")
        return ctx.tap(f"{prefix}.output", ctx.add(f"{prefix}.add_1", x, h))


class ViTEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, 5, HIDDEN))
        self.layers = nn.ModuleList([ViTEncoderBlock() for _ in range(LAYERS)])
        self.ln = nn.LayerNorm(HIDDEN, eps=VIT_LN_EPS)

    def forward(self, t, ctx, prefix="encoder"):
        t = ctx.add(f"{prefix}.add", t, self.pos_embedding, constant_b=True)     # broadcast over the batch
        for i, block in enumerate(self.layers):
            t = block(t, ctx, f"{prefix}.layers.{i}")
        return ctx.layer_norm(f"{prefix}.ln", self.ln, ctx.tap(f"{prefix}.ln.input", t))


class TinyViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, HIDDEN, kernel_size=4, stride=4)
        self.class_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.encoder = ViTEncoder()
        self.heads = nn.Sequential(collections.OrderedDict(head=nn.Linear(HIDDEN, CLASSES)))
        self.ctx = PLAIN                 # a plain attribute (the exporters call forward with the input only)

    def forward(self, x):
        return self.forward_ctx(x, self.ctx)

    def forward_ctx(self, x, ctx):
        n = x.shape[0]
        t = ctx.patch_conv("conv_proj", self.conv_proj, x)                         # [N, 4, 8]
        t = torch.cat([self.class_token.expand(n, 1, HIDDEN), t], dim=1)           # [N, 5, 8]
        t = self.encoder(t, ctx)
        return ctx.linear("heads.head", self.heads.head, t[:, 0])


class BertSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN),
                                            nn.Linear(HIDDEN, HIDDEN))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, ctx, prefix, record_qkv=False):
        q = ctx.linear(f"{prefix}.query", self.query, x)
        k = ctx.linear(f"{prefix}.key", self.key, x)
        v = ctx.linear(f"{prefix}.value", self.value, x)
        return attention_core(ctx, prefix, q, k, v, self.softmax, ("query", "key", "value") if record_qkv else None)


class BertSelfOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=BERT_LN_EPS)

    def forward(self, hidden, input_tensor, ctx, prefix):
        h = ctx.linear(f"{prefix}.dense", self.dense, hidden)
        h = ctx.tap(f"{prefix}.LayerNorm.input", ctx.add(f"{prefix}.add", h, input_tensor))
        return ctx.layer_norm(f"{prefix}.LayerNorm", self.LayerNorm, h)


class BertAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.self = BertSelfAttention()
        self.output = BertSelfOutput()

    def forward(self, x, ctx, prefix, record_qkv=False):
        a = self.self(x, ctx, f"{prefix}.self", record_qkv)
        return self.output(a, x, ctx, f"{prefix}.output")


class BertIntermediate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, MLP)
        self.intermediate_act_fn = nn.GELU()

    def forward(self, x, ctx, prefix):
        h = ctx.linear(f"{prefix}.dense", self.dense, x)
        return ctx.act(f"{prefix}.intermediate_act_fn", self.intermediate_act_fn, h)


class BertOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(MLP, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=BERT_LN_EPS)

    def forward(self, hidden, input_tensor, ctx, prefix):
        h = ctx.linear(f"{prefix}.dense", self.dense, hidden)
        h = ctx.tap(f"{prefix}.LayerNorm.input", ctx.add(f"{prefix}.add", h, input_tensor))
        return ctx.layer_norm(f"{prefix}.LayerNorm", self.LayerNorm, h)


class BertLayer(nn.Module):
    """Hugging Face's BertLayer (post-LN), eager attention without mask or dropout."""

    def __init__(self):
        super().__init__()
        self.attention = BertAttention()
        self.intermediate = BertIntermediate()
        self.output = BertOutput()

    def forward(self, x, ctx, prefix):
        x = ctx.tap(f"{prefix}.input", x)
        x = self.attention(x, ctx, f"{prefix}.attention", record_qkv=prefix.endswith(".0"))
        h = self.intermediate(x, ctx, f"{prefix}.intermediate")
        return ctx.tap(f"{prefix}.output", self.output(h, x, ctx, f"{prefix}.output"))


class BertEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.position_embeddings = nn.Embedding(SEQ, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=BERT_LN_EPS)

    def forward(self, input_ids=None, inputs_embeds=None, ctx=PLAIN, prefix="embeddings"):
        """As Hugging Face's: input_ids or the word-embedding output inputs_embeds [N, 6, 8]."""
        e = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        pos = self.position_embeddings.weight.unsqueeze(0)          # positions 0..5: a constant [1, 6, 8]
        h = ctx.tap(f"{prefix}.LayerNorm.input", ctx.add(f"{prefix}.add", e, pos, constant_b=True))
        return ctx.layer_norm(f"{prefix}.LayerNorm", self.LayerNorm, h)


class BertEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer() for _ in range(LAYERS)])

    def forward(self, x, ctx, prefix="encoder"):
        for i, layer in enumerate(self.layer):
            x = layer(x, ctx, f"{prefix}.layer.{i}")
        return x


class BertPooler(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)
        self.activation = nn.Tanh()

    def forward(self, x, ctx, prefix="pooler"):
        h = ctx.linear(f"{prefix}.dense", self.dense, x[:, 0])
        return ctx.act(f"{prefix}.activation", self.activation, h)


class TinyBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = BertEmbeddings()
        self.encoder = BertEncoder()
        self.pooler = BertPooler()
        self.classifier = nn.Linear(HIDDEN, CLASSES)
        self.ctx = PLAIN                 # a plain attribute (the exporters call forward with the input only)

    def forward(self, ids):
        return self._head(self.embeddings(input_ids=ids, ctx=self.ctx), self.ctx)

    def from_embeddings(self, e, ctx=PLAIN):
        """e: word-embedding output [N, 6, 8]."""
        return self._head(self.embeddings(inputs_embeds=e, ctx=ctx), ctx)

    def _head(self, x, ctx):
        x = self.encoder(x, ctx)
        return ctx.linear("classifier", self.classifier, self.pooler(x, ctx))


class BertFromEmbeddings(nn.Module):
    """captum's view of the BERT: the explained input is the word-embedding output."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, e):
        return self.bert.from_embeddings(e)


def init_params(model, gen):
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.copy_(short(torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.weight[0].numel())))
                m.bias.copy_(short(torch.randn(m.bias.shape, generator=gen) * BIAS_STD))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(short(torch.rand(m.weight.shape, generator=gen) + 0.5))
                m.bias.copy_(short(torch.randn(m.bias.shape, generator=gen) * 0.2))
            elif isinstance(m, nn.Embedding):
                std = 0.5 if name.endswith("position_embeddings") else 1.0
                m.weight.copy_(short(torch.randn(m.weight.shape, generator=gen) * std))
        if isinstance(model, TinyViT):
            model.class_token.copy_(short(torch.randn(model.class_token.shape, generator=gen)))
            model.encoder.pos_embedding.copy_(short(torch.randn(model.encoder.pos_embedding.shape, generator=gen)
                                                    * 0.5))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def draw(name, seed):
    gen = torch.Generator().manual_seed(seed)
    if name == "tiny_vit":
        model = init_params(TinyViT(), gen)
        inputs = short(torch.randn(BATCH, 3, 8, 8, generator=gen))
    else:
        model = init_params(TinyBert(), gen)
        inputs = torch.randint(0, VOCAB, (BATCH, SEQ), generator=gen)
    return model, inputs


# ------------------------------------------------------------------------------------------------------------------
# 3. Running the cases
# ------------------------------------------------------------------------------------------------------------------

def explained_input(name, model, inputs):
    """The tensor whose relevance is reported: x (vit), the word-embedding output (bert)."""
    if name == "tiny_vit":
        return inputs.clone()
    return model.embeddings.word_embeddings(inputs).detach().clone()


def forward_from(name, model, e, ctx):
    return model.forward_ctx(e, ctx) if name == "tiny_vit" else model.from_embeddings(e, ctx)


def run_case(name, model, inputs, targets, mode, **kw):
    """Returns (logits, input relevance, {point: relevance}, rules)."""
    ctx = Ctx(mode, **kw)
    e = explained_input(name, model, inputs).requires_grad_(True)
    out = forward_from(name, model, e, ctx)
    onehot = torch.zeros_like(out)
    onehot[range(out.shape[0]), targets] = 1.0
    # explicit: relevance is what flows backward, start with R = logit * one-hot; efficient: gradient x input, start
    # with the gradient one-hot so that the output relevance (out * grad) is the logit
    out.backward(onehot * out.detach() if ctx.explicit else onehot)
    rel = e.grad.detach().clone() if ctx.explicit else (e * e.grad).detach()
    points = collections.OrderedDict((p, ctx.relevance(p)) for p in ctx.taps)
    return out.detach(), rel, points, ctx.rules


def conservation(name, logits, targets, rel, points):
    blocks = [p for p in points if p.endswith(".input") and p.count(".") == 3 and ".layer" in p]
    return {
        "target_logit": [float(logits[i, t]) for i, t in enumerate(targets)],
        "input_sum": [float(v) for v in rel.reshape(rel.shape[0], -1).sum(1)],
        "block_input_sums": {p: [float(v) for v in points[p].reshape(points[p].shape[0], -1).sum(1)] for p in blocks},
    }


def efficient_check(name, model, inputs, targets, explicit_cases):
    """lxt's efficient mode vs explicit mode (epsilon 0): returns the report; fails above 1e-8."""
    report = {}
    for case, mode, placement in (("attn_lrp", "eff_attn_lrp", "qkv"), ("attn_lrp", "eff_attn_lrp", "products"),
                                  ("cp_lrp", "eff_cp_lrp", "qkv")):
        _, rel_x, pts_x, _ = explicit_cases[case]
        key = case if case == "cp_lrp" else f"{case}_{placement}"
        entry = {"lxt_efficient": ("stop_gradient(q), stop_gradient(k) (patches.cp_wrap_attention_forward)"
                                   if case == "cp_lrp" else
                                   "divide_gradient(q, 4), divide_gradient(k, 4), divide_gradient(v, 2) "
                                   "(patches.wrap_attention_forward)" if placement == "qkv" else
                                   "divide_gradient(scores, 2), divide_gradient(context, 2) (models/bert.py)")
                 + "; patches.layer_norm_forward (stop_gradient on std); identity_rule_implicit on GELU and tanh; "
                   "gradient x input with the output gradient one-hot"}
        for eps0 in (False, True):
            _, rel, pts, _ = run_case(name, model, inputs, targets, mode, eff_placement=placement,
                                      eff_identity_eps0=eps0)
            devs = {"input": max_rel(rel, rel_x)}
            halved = []
            for p, r in pts.items():
                factor = 1.0
                if case == "attn_lrp" and placement == "qkv" and ".softmax." in p:
                    # gradient x input at the softmax is 2x the explicit relevance with this placement
                    factor = 0.5
                    halved.append(p)
                    check(max_rel(r, pts_x[p]) > 0.1, f"{name}: expected a factor 2 at {p}")
                devs[p] = max_rel(r * factor, pts_x[p])
            worst = max(devs.values())
            check(worst <= 1e-8, f"{name} {key}: efficient vs explicit {worst:.3e}")
            if eps0:
                # identity_rule_implicit_fn.apply(fn, x, 0.0): the only difference left is rounding
                check(worst <= 1e-12, f"{name} {key}: efficient (identity epsilon 0) vs explicit {worst:.3e}")
                entry["max_rel_dev_identity_epsilon_0"] = worst
            else:
                entry.update(max_rel_dev=worst, max_rel_dev_input=devs["input"], softmax_points_halved=halved)
        report[key] = entry
        print(f"  efficient vs explicit {key}: {entry['max_rel_dev']:.2e} (identity_rule_implicit with epsilon 0: "
              f"{entry['max_rel_dev_identity_epsilon_0']:.2e})")
    return report


# ------------------------------------------------------------------------------------------------------------------
# 4. Independent numpy replay (reads only the JSON)
# ------------------------------------------------------------------------------------------------------------------

class NumpyReplay:
    """Forward pass and textbook rules in numpy; every primitive returns (output, backward closure) and records the
    conditioning |z| / sum|terms| of the denominators the epsilon-0 rules divide by."""

    def __init__(self, fx, cp):
        self.w = {k: _np(v) for k, v in fx["weights"].items()}
        self.cp = cp
        self.cond = []
        self.points = {}

    def _c(self, z, terms):
        self.cond.append(float((np.abs(z) / terms).min()))

    def linear(self, name, x):
        W, b = self.w[name + ".weight"], self.w[name + ".bias"]
        z = x @ W.T + b
        self._c(z, np.abs(x) @ np.abs(W).T + np.abs(b))
        return z, lambda R: x * ((R / z) @ W)

    def add(self, a, b):
        z = a + b
        self._c(z, np.abs(a) + np.abs(b))
        return z, lambda R: (a * R / z, b * R / z)

    def layer_norm(self, name, x, eps):
        w, b = self.w[name + ".weight"], self.w[name + ".bias"]
        xc = x - x.mean(-1, keepdims=True)
        std = np.sqrt((xc ** 2).mean(-1, keepdims=True) + eps)
        y = w * xc / std + b
        self._c(y, np.abs(w * xc / std) + np.abs(b))

        def back(R):
            u = w * (R / y) / std                       # J = diag(w / std) (I - 11^T / D), J^T u = u - mean(u)
            return x * (u - u.mean(-1, keepdims=True))
        return y, back

    def matmul(self, A, B):
        z = A @ B
        self._c(z, np.abs(A) @ np.abs(B))

        def back(R):
            Rn = R / (2 * z)
            return A * (Rn @ np.swapaxes(B, -1, -2)), B * (np.swapaxes(A, -1, -2) @ Rn)
        return z, back

    def const_matmul(self, P, V):
        z = P @ V
        self._c(z, np.abs(P) @ np.abs(V))
        return z, lambda R: V * (np.swapaxes(P, -1, -2) @ (R / z))

    @staticmethod
    def softmax(s):
        e = np.exp(s - s.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        return p, lambda R: s * (R - p * R.sum(-1, keepdims=True))

    def attention(self, prefix, names, out_name, x, record):
        n, t, _ = x.shape
        (q, bq), (k, bk), (v, bv) = (self.linear(f"{prefix}.{m}", x) for m in names)
        split = lambda a: a.reshape(n, t, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)
        merge = lambda a: a.transpose(0, 2, 1, 3).reshape(n, t, HIDDEN)
        qh, kh, vh = split(q), split(k), split(v)
        s, bs = self.matmul(qh * SCALE, np.swapaxes(kh, -1, -2))
        p, bp = self.softmax(s)
        if self.cp:
            c, bc = self.const_matmul(p, vh)
        else:
            c, bc = self.matmul(p, vh)
        o, bo = self.linear(out_name, merge(c))
        sm = prefix + ".softmax"

        def back(R):
            Rc = merge_inv(bo(R))
            if self.cp:
                Rv, Rp = bc(Rc), np.zeros_like(p)
                Rs, Rq, Rk = np.zeros_like(s), np.zeros_like(qh), np.zeros_like(kh)
            else:
                Rp, Rv = bc(Rc)
                Rs = bp(Rp)
                Rq, RkT = bs(Rs)                        # the scale 0.5 passes relevance unchanged
                Rk = np.swapaxes(RkT, -1, -2)
            self.points[sm + ".output"], self.points[sm + ".input"] = Rp, Rs
            Rq, Rk, Rv = merge(Rq), merge(Rk), merge(Rv)
            if record:
                for m, r in zip(names, (Rq, Rk, Rv)):
                    self.points[f"{prefix}.{m}.output"] = r
            return bq(Rq) + bk(Rk) + bv(Rv)

        def merge_inv(a):
            return a.reshape(n, t, HEADS, HEAD_DIM).transpose(0, 2, 1, 3)
        return o, back

    def vit(self, x):
        w = self.w
        n = x.shape[0]
        cols = x.reshape(n, 3, 2, 4, 2, 4).transpose(0, 2, 4, 1, 3, 5).reshape(n, 4, 48)    # im2col, (c, kh, kw)
        W, b = w["conv_proj.weight"].reshape(HIDDEN, -1), w["conv_proj.bias"]
        tok = cols @ W.T + b
        self._c(tok, np.abs(cols) @ np.abs(W).T + np.abs(b))
        t = np.concatenate([np.broadcast_to(w["class_token"], (n, 1, HIDDEN)), tok], axis=1)
        t, b_pos = self.add(t, np.broadcast_to(w["encoder.pos_embedding"], t.shape))
        blocks = []
        for i in range(LAYERS):
            pre = f"encoder.layers.{i}"
            h, b_ln1 = self.layer_norm(pre + ".ln_1", t, VIT_LN_EPS)
            h, b_att = self.attention(pre + ".self_attention", ("q", "k", "v"), pre + ".self_attention.out_proj", h,
                                      i == 0)
            t1, b_add = self.add(t, h)
            h, b_ln2 = self.layer_norm(pre + ".ln_2", t1, VIT_LN_EPS)
            h, b_fc1 = self.linear(pre + ".mlp.0", h)
            h = 0.5 * h * (1.0 + np.vectorize(math.erf)(h / math.sqrt(2.0)))                  # identity rule
            h, b_fc2 = self.linear(pre + ".mlp.3", h)
            t, b_add1 = self.add(t1, h)
            blocks.append((pre, b_ln1, b_att, b_add, b_ln2, b_fc1, b_fc2, b_add1))
        h, b_ln = self.layer_norm("encoder.ln", t, VIT_LN_EPS)
        out, b_head = self.linear("heads.head", h[:, 0])

        def back(R):
            Rh = np.zeros_like(h)
            Rh[:, 0] = b_head(R)
            Rt = b_ln(Rh)
            self.points["encoder.ln.input"] = Rt
            for pre, b_ln1, b_att, b_add, b_ln2, b_fc1, b_fc2, b_add1 in reversed(blocks):
                self.points[pre + ".output"] = Rt
                Rt1, Rh = b_add1(Rt)
                Rln2 = b_ln2(b_fc1(b_fc2(Rh)))
                self.points[pre + ".ln_2.input"] = Rln2
                Rt1 = Rt1 + Rln2
                self.points[pre + ".add.output"] = Rt1
                Rt, Rh = b_add(Rt1)
                Rln1 = b_ln1(b_att(Rh))
                self.points[pre + ".ln_1.input"] = Rln1
                Rt = Rt + Rln1
                self.points[pre + ".input"] = Rt
            Rt, _ = b_pos(Rt)                                    # the position embedding's share is dropped
            Rtok = Rt[:, 1:]                                     # the class token's slot is dropped
            Rcols = cols * ((Rtok / tok) @ W)
            return Rcols.reshape(n, 2, 2, 3, 4, 4).transpose(0, 3, 1, 4, 2, 5).reshape(x.shape)
        return out, back

    def bert(self, e):
        n = e.shape[0]
        gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))
        h, b_pos = self.add(e, np.broadcast_to(self.w["embeddings.position_embeddings.weight"], e.shape))
        x, b_eln = self.layer_norm("embeddings.LayerNorm", h, BERT_LN_EPS)
        layers = []
        for i in range(LAYERS):
            pre = f"encoder.layer.{i}"
            a, b_att = self.attention(pre + ".attention.self", ("query", "key", "value"),
                                      pre + ".attention.output.dense", x, i == 0)
            h, b_add = self.add(a, x)
            x1, b_ln1 = self.layer_norm(pre + ".attention.output.LayerNorm", h, BERT_LN_EPS)
            h, b_fc1 = self.linear(pre + ".intermediate.dense", x1)
            h, b_fc2 = self.linear(pre + ".output.dense", gelu(h))
            h, b_add1 = self.add(h, x1)
            x, b_ln2 = self.layer_norm(pre + ".output.LayerNorm", h, BERT_LN_EPS)
            layers.append((pre, b_att, b_add, b_ln1, b_fc1, b_fc2, b_add1, b_ln2))
        h, b_pool = self.linear("pooler.dense", x[:, 0])
        out, b_cls = self.linear("classifier", np.tanh(h))

        def back(R):
            Rx = np.zeros_like(x)
            Rx[:, 0] = b_pool(b_cls(R))
            for pre, b_att, b_add, b_ln1, b_fc1, b_fc2, b_add1, b_ln2 in reversed(layers):
                self.points[pre + ".output"] = Rx
                Rh = b_ln2(Rx)
                self.points[pre + ".output.LayerNorm.input"] = Rh
                Rmlp, Rx1 = b_add1(Rh)
                Rx1 = Rx1 + b_fc1(b_fc2(Rmlp))
                Rh = b_ln1(Rx1)
                self.points[pre + ".attention.output.LayerNorm.input"] = Rh
                Ra, Rx = b_add(Rh)
                Rx = Rx + b_att(Ra)
                self.points[pre + ".input"] = Rx
            Rh = b_eln(Rx)
            self.points["embeddings.LayerNorm.input"] = Rh
            return b_pos(Rh)[0]
        return out, back


def numpy_replay(fx, case):
    """Returns (logits, input relevance, points, min conditioning)."""
    rp = NumpyReplay(fx, cp=(case == "cp_lrp"))
    if fx["name"] == "tiny_vit":
        out, back = rp.vit(_np(fx["x"]))
    else:
        ids = np.asarray(fx["ids"]["data"], dtype=np.int64).reshape(fx["ids"]["shape"])
        out, back = rp.bert(rp.w["embeddings.word_embeddings.weight"][ids])
    R = np.zeros_like(out)
    R[range(out.shape[0]), fx["targets"]] = out[range(out.shape[0]), fx["targets"]]
    rel = back(R)
    return out, rel, rp.points, min(rp.cond)


# ------------------------------------------------------------------------------------------------------------------
# 5. DeepLIFT (captum) and ONNX
# ------------------------------------------------------------------------------------------------------------------

def run_deeplift(name, model, inputs, targets):
    note = ("captum 0.9.0 DeepLift (eps 1e-10): Rescale at nn.Softmax (captum's softmax rule normalises with the mean "
            "multiplier over the whole tensor, not per row) and nn.Tanh only; GELU, LayerNorm and the products of two "
            "computed tensors get the plain gradient, so summation-to-delta does not hold (informational).")
    if name == "tiny_vit":
        net, x = model, inputs
        baselines = {"zero": torch.zeros_like(x)}
    else:
        net, x = BertFromEmbeddings(model).eval(), explained_input(name, model, inputs)
        e0 = model.embeddings.word_embeddings.weight[0]
        baselines = {"zero": torch.zeros_like(x), "token_0": e0.expand_as(x).clone()}
    runs = []
    for kind, b in baselines.items():
        entry = {"baseline_kind": kind, "baseline": tensor_json(b)}
        try:
            attr, delta = DeepLift(copy.deepcopy(net), eps=DL_EPS).attribute(
                x.clone().requires_grad_(True), baselines=b, target=targets, return_convergence_delta=True)
            entry.update(attribution=tensor_json(attr), delta=[float(v) for v in delta], error=None)
            with torch.no_grad():
                total = net(x)[range(BATCH), targets] - net(b)[range(BATCH), targets]
            entry["total"] = [float(v) for v in total]
            dev = float((attr.reshape(BATCH, -1).sum(1) - total).abs().max())
            check(abs(dev - float(delta.abs().max())) < 1e-8, f"{name}: captum's delta bookkeeping")
            print(f"  deeplift {kind}: max|delta| {float(delta.abs().max()):.3e}")
        except Exception as err:  # recorded, informational only
            entry.update(attribution=None, delta=None, error=f"{type(err).__name__}: {err}")
            print(f"  deeplift {kind}: ERROR {entry['error']}")
        runs.append(entry)
    return {"captum": "DeepLift", "eps": DL_EPS, "multiply_by_inputs": True,
            "input": "x" if name == "tiny_vit" else "embeddings.word_embeddings.output",
            **({"inputs": tensor_json(x)} if name == "tiny_bert" else {}), "note": note, "runs": runs}


def strip_metadata(path):
    import onnx
    m = onnx.load(path)
    for item in [m.graph, *m.graph.node, *m.graph.value_info, *m.graph.initializer, *m.graph.input,
                 *m.graph.output]:
        del item.metadata_props[:]
    del m.metadata_props[:]
    onnx.save(m, path)


def export_onnx(model, example, path, dynamo, input_name):
    if dynamo:
        torch.onnx.export(model, (example,), path, dynamo=True, opset_version=18, external_data=False,
                          input_names=[input_name], output_names=["logits"],
                          dynamic_shapes={input_name: {0: torch.export.Dim("batch")}}, verbose=False)
        strip_metadata(path)
    else:
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=17, do_constant_folding=True,
                          input_names=[input_name], output_names=["logits"],
                          dynamic_axes={input_name: {0: "batch"}, "logits": {0: "batch"}})


def onnx_summary(path):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    ext = [t.name for t in m.graph.initializer if t.external_data]
    check(not ext, f"{path}: external data {ext}")
    inp = m.graph.input[0]
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    counts = collections.Counter(n.op_type for n in m.graph.node)
    elem = {1: "float32", 11: "float64", 7: "int64"}
    dtypes = sorted({elem.get(t.data_type, str(t.data_type)) for t in m.graph.initializer
                     if t.data_type in (1, 11)})
    return {
        "opset": max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")),
        "input": {"name": inp.name, "dims": dims, "dtype": elem[inp.type.tensor_type.elem_type]},
        "output": m.graph.output[0].name,
        "dynamic_batch": isinstance(dims[0], str),
        "weight_dtype": dtypes,
        "operators": sorted(counts),
        "node_counts": dict(sorted(counts.items())),
        "named_nodes": all(n.name for n in m.graph.node),
        "bytes": os.path.getsize(path),
        "node_signature": [(n.op_type, len(n.input), len(n.output)) for n in m.graph.node],
    }


def ort_run(path, feed):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: feed})[0]


def onnx_exports(name, model, inputs, logits, out_dir):
    import onnxruntime  # noqa: F401 (fails early if absent)
    input_name = "x" if name == "tiny_vit" else "ids"
    gen = torch.Generator().manual_seed(7)
    batch3 = short(torch.randn(3, 3, 8, 8, generator=gen)) if name == "tiny_vit" else \
        torch.randint(0, VOCAB, (3, SEQ), generator=gen)
    with torch.no_grad():
        logits3 = model(batch3)
    report = collections.OrderedDict()
    for dynamo in (False, True):
        stem = f"{name}.dynamo" if dynamo else name
        path = os.path.join(out_dir, f"{stem}.onnx")
        entry = {"exporter": "dynamo" if dynamo else "torchscript"}
        try:
            export_onnx(model, inputs, path, dynamo, input_name)
        except Exception as err:
            if not dynamo:
                raise
            entry["error"] = f"{type(err).__name__}: {err}"
            print(f"  {stem}.onnx: dynamo export failed: {entry['error'][:200]}")
            report[f"{stem}.onnx"] = entry
            continue
        summ = onnx_summary(path)
        sig = summ.pop("node_signature")
        entry.update(summ)
        feed = (lambda t: t.numpy()) if name == "tiny_bert" else (lambda t: t.numpy().astype(np.float64))
        try:
            got, got3 = ort_run(path, feed(inputs)), (ort_run(path, feed(batch3)) if summ["dynamic_batch"] else None)
            entry["onnxruntime_file"] = f"{stem}.onnx"
        except Exception as err:
            # onnxruntime's CPU provider lacks a float64 kernel: a float32 twin with the same nodes
            entry["onnxruntime_float64_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            path32 = os.path.join(out_dir, f"{stem}.f32.onnx")
            m32 = copy.deepcopy(model).float()
            ex32 = inputs.float() if name == "tiny_vit" else inputs
            export_onnx(m32, ex32, path32, dynamo, input_name)
            summ32 = onnx_summary(path32)
            check(summ32.pop("node_signature") == sig, f"{stem}: float32 twin has other nodes")
            check(summ32["operators"] == summ["operators"], f"{stem}: float32 twin has other operators")
            feed = (lambda t: t.numpy()) if name == "tiny_bert" else (lambda t: t.numpy().astype(np.float32))
            got = ort_run(path32, feed(inputs))
            got3 = ort_run(path32, feed(batch3)) if summ["dynamic_batch"] else None
            entry["onnxruntime_file"] = f"{stem}.f32.onnx"
            entry["onnxruntime_file_bytes"] = os.path.getsize(path32)
            check(os.path.getsize(path32) < MAX_FILE, f"{path32} too large")
        entry["onnxruntime_dtype"] = str(got.dtype)
        entry["onnxruntime_logits"] = tensor_json(got.astype(np.float64))
        entry["max_rel_dev"] = assert_close(got, logits, ORT_TOL, f"{stem}: onnxruntime vs torch")
        if got3 is not None:
            entry["max_rel_dev_batch3"] = assert_close(got3, logits3, ORT_TOL, f"{stem}: onnxruntime batch 3")
        check(os.path.getsize(path) < MAX_FILE, f"{path} too large")
        print(f"  {stem}.onnx ({entry['bytes'] / 1e3:.1f} KB, opset {entry['opset']}, dynamic batch "
              f"{entry['dynamic_batch']}, run {entry['onnxruntime_file']}): {entry['max_rel_dev']:.1e}; "
              f"{' '.join(entry['operators'])}")
        report[f"{stem}.onnx"] = entry
    return report


# ------------------------------------------------------------------------------------------------------------------
# 6. One fixture
# ------------------------------------------------------------------------------------------------------------------

def select_draw(name):
    for seed in range(SEED_START[name], SEED_START[name] + 500):
        model, inputs = draw(name, seed)
        fx = base_fixture(name, model, inputs, seed)
        conds = [numpy_replay(fx, case)[3] for case in ("attn_lrp", "cp_lrp")]
        if min(conds) >= MIN_COND:
            return seed, model, inputs, fx, min(conds)
    raise AssertionError(f"{name}: no well-conditioned draw")


def base_fixture(name, model, inputs, seed):
    fx = {"name": name, "weights": {k: tensor_json(v) for k, v in model.state_dict().items()},
          "targets": TARGETS[name]}
    if name == "tiny_vit":
        fx["x"] = tensor_json(inputs)
    else:
        fx["ids"] = int_tensor_json(inputs)
    return fx


def generate(name, out_dir):
    print(f"{name}:")
    seed, model, inputs, fxbase, cond = select_draw(name)
    targets = TARGETS[name]
    print(f"  seed {seed}, min conditioning {cond:.2e}")
    with torch.no_grad():
        logits = model(inputs)

    cases, explicit = collections.OrderedDict(), {}
    rules = {}
    for case in ("attn_lrp", "cp_lrp"):
        out, rel, pts, rl = run_case(name, model, inputs, targets, case)
        assert_close(out, logits, 1e-12, f"{name} {case}: logits in explicit mode")
        check(bool(torch.isfinite(rel).all()), f"{name} {case}: non-finite relevance")
        check(bool((rel.reshape(BATCH, -1).abs().sum(1) > 0).all()), f"{name} {case}: all-zero sample")
        explicit[case] = (out, rel, pts, rl)
        rules[case] = rl
        c = collections.OrderedDict(relevance=tensor_json(rel))
        if name == "tiny_bert":
            c["relevance_tokens"] = tensor_json(rel.sum(-1))
        c["per_node"] = collections.OrderedDict((p, tensor_json(r)) for p, r in pts.items())
        c["conservation"] = conservation(name, logits, targets, rel, pts)
        cases[case] = c
        cons = c["conservation"]
        print(f"  {case}: sum R_in {[round(v, 6) for v in cons['input_sum']]} vs logit "
              f"{[round(v, 6) for v in cons['target_logit']]}")
    for case in ("attn_lrp", "cp_lrp"):
        e = run_case(name, model, inputs, targets, "eff_attn_lrp" if case == "attn_lrp" else "eff_cp_lrp")[0]
        assert_close(e, logits, 1e-12, f"{name}: logits in efficient mode")

    eff = efficient_check(name, model, inputs, targets, explicit)

    # informational variants
    _, rel_ln, _, _ = run_case(name, model, inputs, targets, "attn_lrp", lxt_layer_norm=True)
    ln_effect = {"what": "attn_lrp with lxt.explicit.functional.layer_norm (no epsilon argument: layer_norm_grad_fn's "
                         "default epsilon 1e-6 in R / (y + 1e-6)) instead of epsilon 0",
                 "max_rel_dev_input": max_rel(rel_ln, explicit["attn_lrp"][1])}
    _, rel_cpm, _, _ = run_case(name, model, inputs, targets, "cp_lrp", cp_lxt_matmul=True)
    cp_mm = {"what": "cp_lrp with lxt.explicit.functional.matmul(probs, v) on constant probs (each factor gets half, "
                     "the constant's half is dropped) instead of the epsilon rule on v",
             "input_sum": [float(v) for v in rel_cpm.reshape(BATCH, -1).sum(1)],
             "max_rel_dev_input": max_rel(rel_cpm, explicit["cp_lrp"][1])}
    print(f"  lxt layer_norm default eps effect {ln_effect['max_rel_dev_input']:.2e}; CP-LRP with lxt matmul: "
          f"sum R_in {[round(v, 6) for v in cp_mm['input_sum']]}")

    versions = {"torch": torch.__version__, "lxt": pkg_version("lxt"), "captum": pkg_version("captum"),
                "numpy": np.__version__, "transformers": pkg_version("transformers"), "onnx": pkg_version("onnx"),
                "onnxruntime": pkg_version("onnxruntime"), "onnxscript": pkg_version("onnxscript")}
    config = {"hidden": HIDDEN, "heads": HEADS, "head_dim": HEAD_DIM, "mlp": MLP, "layers": LAYERS,
              "classes": CLASSES, "scale": SCALE, "scale_on": "q (before the score product)",
              "gelu": "exact (erf)", "attention_mask": None}
    if name == "tiny_vit":
        config.update(image=[3, 8, 8], patch=4, tokens=5, layer_norm_eps=VIT_LN_EPS, norm="pre-LN",
                      input="x [N, 3, 8, 8]")
    else:
        config.update(vocab=VOCAB, seq=SEQ, tokens=SEQ, layer_norm_eps=BERT_LN_EPS, norm="post-LN",
                      input="ids [N, 6] int64", pooler="token 0 -> pooler.dense -> tanh -> classifier")

    fx = collections.OrderedDict(generator=GENERATOR, versions=versions, name=name, seed=seed, config=config)
    fx.update((k, fxbase[k]) for k in ("x", "ids") if k in fxbase)
    fx["targets"] = targets
    fx["logits"] = tensor_json(logits)
    fx["weights"] = fxbase["weights"]
    fx["rules"] = rules
    fx["cases"] = cases
    fx["efficient_vs_explicit"] = eff

    # independent replay from the JSON alone
    fxj = json.loads(json.dumps(fx))
    replay = {}
    for case in ("attn_lrp", "cp_lrp"):
        out, rel, pts, cond = numpy_replay(fxj, case)
        assert_close(out, _np(fxj["logits"]), 1e-12, f"{name}: numpy forward")
        dev = {"input": assert_close(rel, _np(fxj["cases"][case]["relevance"]), 1e-10, f"{name} {case}: replay input")}
        check(set(pts) == set(fxj["cases"][case]["per_node"]), f"{name} {case}: replay points "
              f"{sorted(set(pts) ^ set(fxj['cases'][case]['per_node']))}")
        for p, r in pts.items():
            dev[p] = assert_close(r, _np(fxj["cases"][case]["per_node"][p]), 1e-10, f"{name} {case}: replay {p}")
        replay[case] = {"max_rel_dev": max(dev.values()), "min_conditioning": cond}
        print(f"  numpy replay {case}: {max(dev.values()):.2e}")
    fx["numpy_replay"] = replay
    fx["cp_lrp_lxt_matmul_variant"] = cp_mm
    fx["layer_norm_default_epsilon_effect"] = ln_effect
    fx["deeplift"] = run_deeplift(name, model, inputs, targets)
    fx["onnx"] = onnx_exports(name, model, inputs, logits, out_dir)
    fx["notes"] = [
        "relevance at a point = what arrives there from all its readers (tensor hook on a clone); '<layer norm>.input'"
        " is the layer norm's own share (for pre-LN blocks the residual branch is not included; for post-LN blocks "
        "and the final/embedding layer norms it is the only reader)",
        "cp_lrp: q, k, scores and probs are detached, their points hold zeros",
        "q/k/v points are the Linear outputs [N, T, 8]; the head layout is reshape [N, T, 2, 4] -> transpose(1, 2)",
        "the efficient qkv placement (lxt patches.wrap_attention_forward) gives 2x the explicit relevance at the "
        "softmax points (gradient x input); input relevance and every other point are equal",
    ]
    return fx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures/transformers)")
    ap.add_argument("--only", nargs="*", default=None, help="tiny_vit and/or tiny_bert")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, lxt {pkg_version('lxt')}, captum {pkg_version('captum')}, "
          f"onnxruntime {pkg_version('onnxruntime')}")
    os.makedirs(args.out, exist_ok=True)
    for name in ("tiny_vit", "tiny_bert"):
        if args.only and name not in args.only:
            continue
        fx = generate(name, args.out)
        text = json.dumps(fx, separators=(",", ":"), allow_nan=False)
        check(len(text) < MAX_FILE, f"{name}.json: {len(text)} bytes")
        path = os.path.join(args.out, f"{name}.json")
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"wrote {os.path.normpath(path)} ({len(text) / 1e3:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
