#!/usr/bin/env python3
"""Generate the graph-network reference fixtures (tests/fixtures/graph_{resnet,vgg_bn,densenet,mobilenet}.json) from
zennit and captum, patched in three places (below: zennit's batch-norm merge as on zennit's main branch, ReLU6 in
captum's nonlinearities, a canonizer for MobileNetV2's residual blocks), on small CNNs with residual additions,
concatenations and batch norms. `--unpatched` writes nothing and prints how far the released libraries are from the
committed fixtures, one patch undone at a time (tools/README.md, "Patched reference runs", has the numbers).

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch torchvision zennit captum numpy
    ~/venv/bin/python tools/gen_graph_fixtures.py            # writes tests/fixtures/graph_*.json (a few seconds)
    ~/venv/bin/python tools/gen_graph_fixtures.py --out DIR  # write somewhere else
    ~/venv/bin/python tools/gen_graph_fixtures.py --unpatched  # the released libraries vs the committed fixtures

The fixtures were produced with zennit 0.5.1, captum 0.9.0, torch 2.x (CPU) and torchvision 0.2x; the versions are
read from the installed packages and written into every file. The script is deterministic (fixed seeds, float64 everywhere, one CPU thread): re-running it
with the same versions gives byte-identical files.

Networks (float64, eval mode, batch N = 2, per-sample input 3x8x8)
--------
Every BatchNorm2d has random running statistics and affine parameters (running_mean ~ N(0, 0.3^2), running_var ~
U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.2^2), eps = 1e-5); conv/linear weights ~ N(0, 1/fan_in), biases ~
N(0, 0.3^2) where PyTorch has them (convs before a BN are bias-free as in torchvision, except in the VGG, where
torchvision's make_layers keeps the bias). Parameters, inputs and baselines are rounded to 4 significant digits (short
reprs keep the files under 400 KB; computed values are written in full). In the mobilenet the BNs that feed a ReLU6
get 3x the weight (U(1.5, 4.5)), so that about 17 % of the ReLU6 inputs exceed 6 (with U(0.5, 1.5) none did and
ReLU6 would be indistinguishable from ReLU). The input is an "image" u ~ U(0.01, 0.99) normalised with the ImageNet
mean/std; low/high (z-box bounds) are (0 - mean)/std and (1 - mean)/std. 3x8x8 instead of 3x16x16 keeps the files
small (the per-node relevances dominate their size) while every stride/pool still sees more than one position.

* resnet:    conv1/bn1/relu/maxpool(3,2,1) stem, layer1 = [torchvision BasicBlock(8, 8)], layer2 = [BasicBlock(8, 16,
             stride 2, downsample = 1x1 conv + BN)], AdaptiveAvgPool2d((1,1)), flatten, Linear(16, 10).
             Canonizer: zennit's ResNetCanonizer (merges every conv->BN pair; replaces the functional residual `+` by a
             zennit.layer.Sum on torch.stack([identity, out], -1), which gets the Norm rule).
* vgg_bn:    torchvision-VGG-like features (conv+BN+ReLU x2, maxpool, conv+BN+ReLU, maxpool), AdaptiveAvgPool2d((2,2)),
             flatten, classifier Linear/ReLU/Dropout/Linear. Canonizer: zennit's VGGCanonizer
             (= SequentialMergeBatchNorm).
* densenet:  torchvision.models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2) with a
             reduced stem (conv0 3x3 stride 1 instead of 7x7 stride 2, so an 8x8 input keeps some spatial extent) and
             the functional tail (F.relu, F.adaptive_avg_pool2d) replaced by nn.ReLU / nn.AdaptiveAvgPool2d((1,1))
             modules: functional ops get no rule in either library (plain gradient), modules get Pass / Norm (zennit)
             and Rescale (captum). Canonizer: zennit's NamedMergeBatchNorm with the data-flow-correct pairs only
             (features.conv0 -> features.norm0 and, in every dense layer, conv1 -> norm2). SequentialMergeBatchNorm
             would also merge each dense layer's conv2 into the NEXT layer's norm1 (and the last conv2 into
             transition1.norm / norm5): adjacent in module order, but a concatenation lies between them in the data
             flow. Here (as in every torchvision DenseNet: conv2 has growth_rate channels, the next norm1 more) the
             channel counts differ and zennit 0.5.1's merge raises a shape error (asserted below, on a copy); with
             equal counts it would silently change the output. The BNs that follow a concatenation stay unmerged;
             zennit gives them Pass.
* mobilenet: torchvision MobileNetV2 pieces: Conv2dNormActivation(3, 8, stride 2), InvertedResidual(8, 8, 1, 2)
             (residual), InvertedResidual(8, 12, 2, 2), InvertedResidual(12, 12, 1, 2) (residual),
             Conv2dNormActivation(12, 16, kernel 1), AdaptiveAvgPool2d(1), flatten, classifier Dropout/Linear(16, 10);
             ReLU6 activations, depthwise convolutions (groups = channels). Canonizer: CompositeCanonizer of
             SequentialMergeBatchNorm (correct here: every BN follows its conv in module order AND in data flow) and
             InvertedResidualCanonizer (defined below, modelled on zennit's ResNetBasicBlockCanonizer): blocks with
             use_res_connect get forward = canonizer_sum(torch.stack([x, self.conv(x)], dim=-1)) with a zennit Sum.

zennit HEAD batch-norm merge semantics (monkeypatch)
----------------------------------------------------
zennit 0.5.1's MergeBatchNorm folds the BN into the preceding linear layer and turns the BN into an "identity" with
mean 0, var 1, weight 1, bias 0 -- but leaves the BN's eps in place, so the identity BN still divides by sqrt(1 + eps)
(relative 5e-6 per BN for eps = 1e-5). zennit HEAD (src/zennit/canonizers.py, merge_batch_norm) also sets eps to 0,
and the Rust crate follows HEAD. This script therefore patches zennit.canonizers.MergeBatchNorm: merge_batch_norm runs
the 0.5.1 code and then sets batch_norm.eps = 0.0 (HEAD), register additionally saves eps and remove restores it
(HEAD saves/restores eps too). For every model it is asserted that WITHOUT the patch the canonized logits deviate from
the plain logits (> 1e-8 relative), and WITH the patch they equal them to 1e-10 relative.

captum and ReLU6
----------------
captum 0.9.0's DeepLift gives Rescale only to module types in captum.attr._core.deep_lift.SUPPORTED_NON_LINEAR
(ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool, Softmax); nn.ReLU6 would get the plain gradient. The script
registers SUPPORTED_NON_LINEAR[nn.ReLU6] = nonlinear (the same Rescale function captum uses for ReLU), so ReLU6 is
Rescale like any other activation (asserted: without it mobilenet does not conserve, with it |delta| < 1e-10).
captum refuses a module that is called twice (BasicBlock's self.relu); for captum the resnet is deep-copied and every
BasicBlock gets a second nn.ReLU (relu2) for its second use (same values, asserted).

Cases
-----
LRP (zennit Gradient attributor, with the model's canonizer): composites epsilon_gamma_box (EpsilonGammaBox(low, high),
defaults), epsilon_plus_flat, epsilon_alpha2_beta1 (zennit presets, defaults) and epsilon (LayerMapComposite(
layer_map_base() + [(Linear, Epsilon())])), each with seed "onehot" (attr_output = one-hot of the target);
epsilon_gamma_box and epsilon also with seed "logit" (attr_output = logits * one-hot), and for these two the
relevance at the output of every graph module called exactly once ("node_relevance"; tensor hooks registered after
zennit's). resnet also has epsilon_no_canonizer (both seeds): zennit then gives the functional residual `+` the plain
gradient (recorded as "gradient_nodes") and BN Pass. Every case records the merges the canonizer performed and the rule
zennit attached to every graph node.
DeepLIFT (captum, eps = 1e-10, multiply_by_inputs=True): DeepLift with a zero, a shared [1, ...] and a per-sample
[N, ...] baseline, DeepLiftShap with K = 3 baselines. "max_pool" is "gradient" when a ReLU module feeds the max-pool
(captum 0.9.0 then discards the pool's cross-max multiplier, issue #1104: resnet, vgg_bn, densenet), "cross_max"
otherwise (mobilenet has no max-pool).

What is checked (the script fails loudly otherwise)
---------------------------------------------------
1. Every canonizer leaves the logits unchanged (1e-10 relative) with the HEAD patch, not without it; removing the
   canonizer restores the model bit for bit (eps included); SequentialMergeBatchNorm on the densenet fails (raises, or
   would change the logits), so the named merge is necessary; every merge zennit performed is a data-flow pair (the
   BN's only input is the conv) and all BNs are merged except the densenet's post-concatenation ones.
2. torch.fx.symbolic_trace of each ORIGINAL model is exported as a node list; an independent forward pass that reads
   only the JSON (torch functional ops) reproduces the logits (1e-12).
3. LRP (zennit Gradient attributor): the logits under zennit's hooks equal the plain ones (1e-10); no NaN, no sample
   with an all-zero relevance. The rule zennit attached to every
   graph node is read back from the registered hooks and recorded; an independent replay from the JSON alone (merges
   applied as recorded, then textbook rule formulas with torch functional ops, no zennit) reproduces the input
   relevance and every recorded node relevance of every case (1e-10). For "epsilon" with seed "logit" the ratio
   sum(R_in) / f_c(x) and the part of f_c absorbed by biases / stabilisers are printed (not asserted).
4. DeepLIFT (captum): summation-to-delta bookkeeping; for models whose every nonlinearity is covered by captum and
   which have no max-pool in gradient mode, |delta| < 1e-10; for models with ReLU -> MaxPool2d (captum issue #1104:
   the pool's multiplier is discarded, Rescale at the ReLU + plain gradient routing at the pool) a non-zero baseline
   does NOT conserve (> 1e-6); an independent replay from the JSON alone (Rescale at ReLU/ReLU6, gradient routing at
   max-pools, everything else linear) reproduces every attribution (1e-10).
5. Quality gates on the draw (deterministic seed search): no near-tie (gap < 1e-6) among the top two entries of a
   max-pool window with positive maximum, no catastrophic cancellation (|z| / sum|terms| < 1e-6) at any affine layer
   or residual sum of the plain or canonized model; DeepLIFT baselines are redrawn when a ReLU/ReLU6 pre-activation is
   within 1e-9 of a kink (0, and 6 for ReLU6), when |x - x_ref| < 1e-8 at a nonlinearity input or is nonzero and
   below 1e-8 at a max-pool input, or when a max-pool window has a near-tie (0 < gap < 1e-9).

Fixture format: see tools/README.md ("Graph fixtures").
"""
import argparse
import collections
import copy
import inspect
import json
import math
import operator
import os
import sys
import types
import warnings

import numpy as np
import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.densenet import DenseNet, _DenseLayer
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, conv1x1
from torchvision.ops import Conv2dNormActivation

import zennit
import zennit.canonizers
from zennit.attribution import Gradient
from zennit.canonizers import (
    AttributeCanonizer, CompositeCanonizer, MergeBatchNorm, NamedMergeBatchNorm, SequentialMergeBatchNorm,
)
from zennit.composites import (
    EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite, layer_map_base,
)
from zennit.core import Hook, Stabilizer
from zennit.layer import Sum
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, ZBox, ZPlus
from zennit.torchvision import ResNetCanonizer, VGGCanonizer
from zennit import types as ztypes

import captum
import captum.attr._core.deep_lift as captum_deep_lift
from captum.attr import DeepLift, DeepLiftShap

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
warnings.filterwarnings("ignore")

GENERATOR = "tools/gen_graph_fixtures.py"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

BATCH = 2
BN_EPS = 1e-5
BIAS_STD = 0.3
BASELINE_STD = 0.7
K_SHAP = 3
DL_EPS = 1e-10
MIN_POOL_GAP = 1e-6     # LRP input: top-2 gap in every max-pool window with positive maximum
MIN_COND = 1e-6         # |z| / sum|terms| at every affine layer / residual sum (plain and canonized)
# fixed normalisation for the z-box bounds: ImageNet mean / std; the input is (u - mean) / std with u ~ U(0, 1)
NORM_MEAN = (0.485, 0.456, 0.406)
NORM_STD = (0.229, 0.224, 0.225)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def max_rel(a, b):
    """max|a - b| / max(1, max|b|)."""
    a = torch.as_tensor(a)
    b = torch.as_tensor(b)
    check(a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


def assert_close(a, b, tol, what):
    err = max_rel(a, b)
    check(bool(torch.isfinite(torch.as_tensor(a)).all()), f"{what}: non-finite values")
    check(err <= tol, f"{what}: max relative deviation {err:.3e} > {tol:.1e}")
    return err


def tensor_json(t):
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    a = np.ascontiguousarray(a, dtype=np.float64)
    check(np.all(np.isfinite(a)), "refusing to write a non-finite tensor")
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def _t(tj):
    return torch.tensor(tj["data"], dtype=torch.float64).reshape(tj["shape"])


def _pair(v):
    return [int(e) for e in v] if isinstance(v, (tuple, list)) else [int(v), int(v)]


# ------------------------------------------------------------------------------------------------------------------
# 1. zennit HEAD merge semantics, the InvertedResidual canonizer, ReLU6 in captum
# ------------------------------------------------------------------------------------------------------------------

_ZENNIT_051 = {
    "merge_batch_norm": MergeBatchNorm.__dict__["merge_batch_norm"],
    "register": MergeBatchNorm.register,
    "remove": MergeBatchNorm.remove,
}


def _merge_batch_norm_head(modules, batch_norm):
    """zennit 0.5.1's merge (folds the BN into the linear layers, BN -> mean 0, var 1, weight 1, bias 0), then, as at
    zennit HEAD, eps -> 0 so that the remaining BN is exactly the identity."""
    _ZENNIT_051["merge_batch_norm"].__func__(modules, batch_norm)
    batch_norm.eps = 0.0


def _register_head(self, linears, batch_norm):
    self.batch_norm_eps = batch_norm.eps  # HEAD saves eps with the other BN parameters ...
    _ZENNIT_051["register"](self, linears, batch_norm)


def _remove_head(self):
    _ZENNIT_051["remove"](self)
    self.batch_norm.eps = self.batch_norm_eps  # ... and restores it


def set_head_merge(enabled):
    """Monkeypatch zennit.canonizers.MergeBatchNorm with zennit HEAD's eps handling (enabled) or restore 0.5.1."""
    if enabled:
        MergeBatchNorm.merge_batch_norm = staticmethod(_merge_batch_norm_head)
        MergeBatchNorm.register = _register_head
        MergeBatchNorm.remove = _remove_head
    else:
        MergeBatchNorm.merge_batch_norm = _ZENNIT_051["merge_batch_norm"]
        MergeBatchNorm.register = _ZENNIT_051["register"]
        MergeBatchNorm.remove = _ZENNIT_051["remove"]


class InvertedResidualCanonizer(AttributeCanonizer):
    """Canonizer for torchvision's MobileNetV2 InvertedResidual blocks, modelled on zennit's ResNetBasicBlockCanonizer:
    a block with use_res_connect computes `x + self.conv(x)` with a functional `+` (no rule in zennit: plain gradient);
    this canonizer overloads its forward with one that sums torch.stack([x, self.conv(x)], dim=-1) with a
    zennit.layer.Sum module (attribute `canonizer_sum`), which the composites map to the Norm rule."""

    def __init__(self):
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name, module):
        if isinstance(module, InvertedResidual) and module.use_res_connect:
            return {"forward": cls.forward.__get__(module), "canonizer_sum": Sum()}
        return None

    @staticmethod
    def forward(self, x):
        out = torch.stack([x, self.conv(x)], dim=-1)
        return self.canonizer_sum(out)


def densenet_merge_pairs(model):
    """Data-flow-correct (conv, BN) pairs of the densenet: the stem, and conv1 -> norm2 inside every dense layer."""
    pairs = [(["features.conv0"], "features.norm0")]
    for name, m in model.named_modules():
        if isinstance(m, _DenseLayer):
            pairs.append(([f"{name}.conv1"], f"{name}.norm2"))
    return pairs


def register_relu6_in_captum():
    captum_deep_lift.SUPPORTED_NON_LINEAR[nn.ReLU6] = captum_deep_lift.nonlinear


def unregister_relu6_in_captum():
    captum_deep_lift.SUPPORTED_NON_LINEAR.pop(nn.ReLU6, None)


# ------------------------------------------------------------------------------------------------------------------
# 2. Models
# ------------------------------------------------------------------------------------------------------------------

class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, stride=2,
                                               downsample=nn.Sequential(conv1x1(8, 16, 2), nn.BatchNorm2d(16))))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):  # as torchvision.models.ResNet._forward_impl
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


class SmallVGGBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(32, 10))

    def forward(self, x):  # as torchvision.models.VGG
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


class SmallDenseNet(DenseNet):
    def __init__(self):
        super().__init__(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=10)
        # reduced stem: 3x3 stride 1 instead of 7x7 stride 2 (same position in features)
        self.features.conv0 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)
        # module versions of the functional tail, registered before the classifier (module order = data flow)
        classifier = self.classifier
        del self.classifier
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = classifier

    def forward(self, x):  # torchvision's DenseNet.forward with F.relu / F.adaptive_avg_pool2d replaced by modules
        features = self.features(x)
        out = self.relu(features)
        out = self.avgpool(out)
        out = torch.flatten(out, 1)
        out = self.classifier(out)
        return out


class SmallMobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            Conv2dNormActivation(3, 8, stride=2, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6),
            InvertedResidual(8, 8, 1, 2),
            InvertedResidual(8, 12, 2, 2),
            InvertedResidual(12, 12, 1, 2),
            Conv2dNormActivation(12, 16, kernel_size=1, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


def _canon_resnet(model):
    return [ResNetCanonizer()]


def _canon_vgg(model):
    return [VGGCanonizer()]


def _canon_densenet(model):
    return [NamedMergeBatchNorm(densenet_merge_pairs(model))]


def _canon_mobilenet(model):
    return [CompositeCanonizer([SequentialMergeBatchNorm(), InvertedResidualCanonizer()])]


MODELS = {
    "resnet": {"cls": SmallResNet, "canonizer": ("ResNetCanonizer", _canon_resnet), "seed": 11000,
               "target": [3, 8], "input_shape": (3, 8, 8)},
    "vgg_bn": {"cls": SmallVGGBN, "canonizer": ("VGGCanonizer", _canon_vgg), "seed": 12000, "target": [5, 1],
               "input_shape": (3, 8, 8)},
    "densenet": {"cls": SmallDenseNet, "canonizer": ("NamedMergeBatchNorm", _canon_densenet), "seed": 13000,
                 "target": [2, 6], "input_shape": (3, 8, 8)},
    "mobilenet": {"cls": SmallMobileNetV2,
                  "canonizer": ("CompositeCanonizer(SequentialMergeBatchNorm, InvertedResidualCanonizer)",
                                _canon_mobilenet),
                  "seed": 14000, "target": [7, 4], "input_shape": (3, 8, 8),
                  "relu6_bn_gain": 3.0},
}


def short(t):
    """Round to 4 significant decimal digits: the doubles nearest to short decimals, whose repr is short (keeps the
    files small; parameters, inputs and baselines only -- every computed reference value is written in full)."""
    return torch.tensor([float(f"{v:.4g}") for v in t.flatten().tolist()]).reshape(t.shape)


def build_model(cls, gen, relu6_bn_gain=1.0):
    model = cls()
    with torch.no_grad():
        for _, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(short(torch.randn(m.weight.shape, generator=gen) / math.sqrt(fan_in)))
                if m.bias is not None:
                    b = torch.randn(m.bias.shape, generator=gen) * BIAS_STD
                    m.bias.copy_(short(torch.where(b.abs() < 0.01, torch.where(b < 0, -0.01, 0.01) + b, b)))
            elif isinstance(m, nn.BatchNorm2d):
                check(m.affine and m.track_running_stats, "BN without affine/running stats")
                m.eps = BN_EPS
                c = m.num_features
                m.running_mean.copy_(short(torch.randn(c, generator=gen) * 0.3))
                m.running_var.copy_(short(torch.rand(c, generator=gen) * 1.5 + 0.5))
                m.weight.copy_(short(torch.rand(c, generator=gen) + 0.5))
                m.bias.copy_(short(torch.randn(c, generator=gen) * 0.2))
        # BNs followed by a ReLU6 (mobilenet): larger scale so that some ReLU6 inputs exceed 6
        for m in model.modules():
            if isinstance(m, Conv2dNormActivation) and isinstance(m[-1], nn.ReLU6) and relu6_bn_gain != 1.0:
                check(isinstance(m[1], nn.BatchNorm2d), "Conv2dNormActivation without BN")
                m[1].weight.copy_(short(m[1].weight * relu6_bn_gain))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def bounds():
    mean = torch.tensor(NORM_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(NORM_STD).reshape(1, 3, 1, 1)
    return (0.0 - mean) / std, (1.0 - mean) / std


def make_input(gen, shape):
    mean = torch.tensor(NORM_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(NORM_STD).reshape(1, 3, 1, 1)
    u = torch.rand((BATCH,) + shape, generator=gen) * 0.98 + 0.01  # stays inside [low, high] after rounding
    return short((u - mean) / std)


def forward(model, x):
    with torch.no_grad():
        return model(x)


def canonized_logits(model, canonizers, x):
    instances = []
    for c in canonizers:
        instances += c.apply(model)
    try:
        out = forward(model, x)
        merged = [inst for inst in instances if isinstance(inst, MergeBatchNorm)]
    finally:
        for inst in instances:
            inst.remove()
    return out, instances, merged


# ------------------------------------------------------------------------------------------------------------------
# 3. Graph export (torch.fx) and an independent forward from the JSON
# ------------------------------------------------------------------------------------------------------------------

def module_json(m):
    if isinstance(m, nn.Conv2d):
        check(m.padding_mode == "zeros" and not isinstance(m.padding, str), "unsupported conv padding")
        return {"op": "conv2d", "weight": tensor_json(m.weight),
                "bias": tensor_json(m.bias) if m.bias is not None else None,
                "stride": _pair(m.stride), "padding": _pair(m.padding), "dilation": _pair(m.dilation),
                "groups": int(m.groups)}
    if isinstance(m, nn.BatchNorm2d):
        return {"op": "batchnorm", "mean": tensor_json(m.running_mean), "var": tensor_json(m.running_var),
                "weight": tensor_json(m.weight), "bias": tensor_json(m.bias), "eps": float(m.eps)}
    if type(m) is nn.ReLU:
        return {"op": "relu"}
    if type(m) is nn.ReLU6:
        return {"op": "relu6"}
    if type(m) is nn.Sigmoid:
        return {"op": "sigmoid"}
    if type(m) is nn.Tanh:
        return {"op": "tanh"}
    if isinstance(m, nn.MaxPool2d):
        check(_pair(m.dilation) == [1, 1] and not m.return_indices, "unsupported max-pool options")
        return {"op": "maxpool2d", "kernel": _pair(m.kernel_size),
                "stride": _pair(m.stride if m.stride is not None else m.kernel_size),
                "padding": _pair(m.padding), "ceil_mode": bool(m.ceil_mode)}
    if isinstance(m, nn.AdaptiveAvgPool2d):
        check(m.output_size is not None and None not in _pair(m.output_size), "adaptive pool with None size")
        return {"op": "adaptive_avgpool2d", "output": _pair(m.output_size)}
    if isinstance(m, nn.AvgPool2d):
        check(m.divisor_override is None, "avg-pool divisor_override")
        return {"op": "avgpool2d", "kernel": _pair(m.kernel_size),
                "stride": _pair(m.stride if m.stride is not None else m.kernel_size),
                "padding": _pair(m.padding), "ceil_mode": bool(m.ceil_mode),
                "count_include_pad": bool(m.count_include_pad)}
    if isinstance(m, nn.Linear):
        check(m.bias is not None, "Linear without bias")
        return {"op": "dense", "weight": tensor_json(m.weight), "bias": tensor_json(m.bias)}
    if isinstance(m, (nn.Dropout, nn.Identity)):
        return {"op": "identity"}
    if isinstance(m, nn.Flatten):
        check(m.start_dim == 1 and m.end_dim == -1, "unsupported nn.Flatten")
        return {"op": "flatten"}
    raise TypeError(f"no JSON mapping for module {type(m).__name__}")


def function_json(n):
    """JSON op for an fx call_function / call_method node, and its tensor inputs."""
    Node = torch.fx.Node
    args, kw = list(n.args), dict(n.kwargs)
    if n.op == "call_function" and n.target is torch.flatten or n.op == "call_method" and n.target == "flatten":
        start = args[1] if len(args) > 1 else kw.pop("start_dim", 0)
        end = args[2] if len(args) > 2 else kw.pop("end_dim", -1)
        check(isinstance(args[0], Node) and start == 1 and end == -1 and not kw,
              f"unsupported flatten {n.format_node()}")
        return {"op": "flatten"}, [args[0]]
    if n.op == "call_function" and n.target in (operator.add, operator.iadd, torch.add) or \
            n.op == "call_method" and n.target in ("add", "add_", "__add__", "__iadd__"):
        check(len(args) == 2 and all(isinstance(a, Node) for a in args) and not kw,
              f"unsupported add {n.format_node()}")
        return {"op": "add"}, args
    if n.op == "call_function" and n.target in (operator.mul, operator.imul, torch.mul) or \
            n.op == "call_method" and n.target in ("mul", "mul_"):
        check(len(args) == 2 and all(isinstance(a, Node) for a in args) and not kw,
              f"unsupported mul {n.format_node()}")
        return {"op": "mul"}, args
    if n.op == "call_function" and n.target is torch.cat:
        tensors = args[0]
        dim = args[1] if len(args) > 1 else kw.pop("dim", 0)
        check(isinstance(tensors, (list, tuple)) and all(isinstance(a, Node) for a in tensors) and dim == 1 and not kw,
              f"unsupported cat {n.format_node()}")
        return {"op": "concat", "axis": dim - 1}, list(tensors)
    raise TypeError(f"no JSON mapping for fx node {n.format_node()}")


def export_graph(model):
    """Trace the model with torch.fx; return (nodes, output name, info), info[name] = {"kind", "target", "block",
    "calls"} ("block": innermost module of a function node, from fx's nn_module_stack)."""
    gm = torch.fx.symbolic_trace(model)
    modules = dict(model.named_modules())
    names = {}
    calls = collections.Counter()
    nodes, info, output = [], {}, None
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            check(not names, "more than one graph input")
            names[n] = "input"
            continue
        if n.op == "output":
            check(isinstance(n.args[0], torch.fx.Node), "output is not a single tensor")
            output = names[n.args[0]]
            continue
        stack = list(n.meta.get("nn_module_stack", {}).keys())
        if n.op == "call_module":
            m = modules[n.target]
            check(len(n.args) == 1 and isinstance(n.args[0], torch.fx.Node) and not n.kwargs,
                  f"call_module with unexpected arguments: {n.format_node()}")
            k = calls[n.target]
            calls[n.target] += 1
            name = n.target if k == 0 else f"{n.target}_{k}"
            entry = module_json(m)
            inputs = [n.args[0]]
            info[name] = {"kind": "module", "target": n.target}
        elif n.op in ("call_function", "call_method"):
            name = n.name
            entry, inputs = function_json(n)
            info[name] = {"kind": "function", "target": None, "block": stack[-1] if stack else ""}
        else:
            raise TypeError(f"unsupported fx node {n.format_node()}")
        check(name != "input" and all(name != d["name"] for d in nodes), f"duplicate node name {name}")
        names[n] = name
        nodes.append({"name": name, "inputs": [names[a] for a in inputs], **entry})
    for name, d in info.items():
        d["calls"] = calls[d["target"]] if d["kind"] == "module" else 1
    return nodes, output, info


def graph_forward(nodes, x, nonlin=None, params=None):
    """Evaluate the exported graph with torch functional ops; return {name: value} (value of "input" included).
    nonlin(name, op, a) may replace the elementwise nonlinearities (DeepLIFT replay); params overrides node
    parameters (merged BNs in the LRP replay)."""
    vals = {"input": x}
    for nd in nodes:
        p = params.get(nd["name"], nd) if params else nd
        ins = [vals[i] for i in nd["inputs"]]
        a = ins[0]
        op = nd["op"]
        if op == "conv2d":
            y = F.conv2d(a, _t(p["weight"]), _t(p["bias"]) if p["bias"] is not None else None, p["stride"],
                         p["padding"], p["dilation"], p["groups"])
        elif op == "batchnorm":
            y = F.batch_norm(a, _t(p["mean"]), _t(p["var"]), _t(p["weight"]), _t(p["bias"]), False, 0.0, p["eps"])
        elif op in ("relu", "relu6", "sigmoid", "tanh"):
            if nonlin is not None:
                y = nonlin(nd["name"], op, a)
            else:
                y = {"relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[op](a)
        elif op == "maxpool2d":
            y = F.max_pool2d(a, nd["kernel"], nd["stride"], nd["padding"], ceil_mode=nd["ceil_mode"])
        elif op == "avgpool2d":
            y = F.avg_pool2d(a, nd["kernel"], nd["stride"], nd["padding"], ceil_mode=nd["ceil_mode"],
                             count_include_pad=nd["count_include_pad"])
        elif op == "adaptive_avgpool2d":
            y = F.adaptive_avg_pool2d(a, nd["output"])
        elif op == "dense":
            y = F.linear(a, _t(p["weight"]), _t(p["bias"]))
        elif op == "identity":
            y = a
        elif op == "flatten":
            y = a.reshape(a.shape[0], -1)
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "mul":
            y = ins[0] * ins[1]
        elif op == "concat":
            y = torch.cat(ins, dim=nd["axis"] + 1)
        else:
            raise ValueError(op)
        vals[nd["name"]] = y
    return vals


# ------------------------------------------------------------------------------------------------------------------
# 4. Quality gates
# ------------------------------------------------------------------------------------------------------------------

def pool_top2_gaps(m, a):
    """top-2 gap of every window of MaxPool2d m on a (padding = -inf), and the window maxima."""
    k, s, p = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size), _pair(m.padding)
    check(not m.ceil_mode, "ceil_mode pools are not gated")
    ap = F.pad(a, (p[1], p[1], p[0], p[0]), value=-math.inf)
    win = ap.unfold(2, k[0], s[0]).unfold(3, k[1], s[1]).reshape(*a.shape[:2], -1, k[0] * k[1])
    top2 = torch.topk(win, 2, dim=-1).values
    return top2[..., 0] - top2[..., 1], top2[..., 0]


def capture_inputs(model, x, types_):
    """{module name: input tensor} for every module of the given types (each must be called once)."""
    got, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, types_):
            def pre(mod, inp, name=name):
                check(name not in got, f"{name} called twice")
                got[name] = inp[0].detach().clone()
            handles.append(m.register_forward_pre_hook(pre))
    try:
        out = forward(model, x)
    finally:
        for h in handles:
            h.remove()
    return got, out


def conditioning(model, x):
    """min over affine layers / avg-pools / zennit Sum modules of |z| / sum|terms| (catastrophic cancellation)."""
    worst, handles = [math.inf, ""], []

    def hook(mod, inp, out, name):
        a = inp[0]
        if isinstance(mod, nn.Conv2d):
            terms = F.conv2d(a.abs(), mod.weight.abs(), mod.bias.abs() if mod.bias is not None else None, mod.stride,
                             mod.padding, mod.dilation, mod.groups)
        elif isinstance(mod, nn.Linear):
            terms = a.abs() @ mod.weight.abs().T + mod.bias.abs()
        elif isinstance(mod, nn.AvgPool2d):
            terms = F.avg_pool2d(a.abs(), mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                 mod.count_include_pad, mod.divisor_override)
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            terms = F.adaptive_avg_pool2d(a.abs(), mod.output_size)
        else:  # Sum
            terms = a.abs().sum(-1)
        r = float((out.abs() / terms).min())
        if r < worst[0]:
            worst[:] = [r, name]
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, Sum, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            handles.append(m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name)))
    try:
        forward(model, x)
    finally:
        for h in handles:
            h.remove()
    return worst[0], worst[1]


def lrp_gate(model, canonizers, x, nodes):
    """None if the draw is fine for LRP, else the reason."""
    pools, _ = capture_inputs(model, x, nn.MaxPool2d)
    mods = dict(model.named_modules())
    for name, a in pools.items():
        gap, top = pool_top2_gaps(mods[name], a)
        live = top > 0
        if live.any() and float(gap[live].min()) < MIN_POOL_GAP:
            return f"{name}: max-pool near-tie {float(gap[live].min()):.1e}"
    cond, where = conditioning(model, x)
    if cond < MIN_COND:
        return f"plain {where}: cancellation {cond:.1e}"
    # residual additions of the plain graph
    vals = graph_forward(nodes, x)
    for nd in nodes:
        if nd["op"] == "add":
            a, b = vals[nd["inputs"][0]], vals[nd["inputs"][1]]
            r = float(((a + b).abs() / (a.abs() + b.abs())).min())
            if r < MIN_COND:
                return f"{nd['name']}: cancellation {r:.1e}"
    instances = []
    for c in canonizers:
        instances += c.apply(model)
    try:
        cond, where = conditioning(model, x)
    finally:
        for inst in instances:
            inst.remove()
    if cond < MIN_COND:
        return f"canonized {where}: cancellation {cond:.1e}"
    return None


def pool_fed(nodes):
    """Names of the modules whose output is the input of a max-pool (captum issue #1104 applies to them)."""
    byname = {nd["name"]: nd for nd in nodes}
    return {nd["inputs"][0] for nd in nodes if nd["op"] == "maxpool2d" and nd["inputs"][0] in byname}


def dl_gate(model, x, ref, pool_fed_names):
    """None if the DeepLIFT pair (x, ref) (both [1, ...]) is safe from branch flips by rounding, else the reason.
    At a nonlinearity |x - x_ref| = 0 exactly is allowed (captum and the replay then use the gradient at x, which is
    well-defined because the pre-activation is kept away from the kinks), except where the nonlinearity feeds a
    max-pool: there captum's fallback gradient includes the pool's (otherwise discarded, #1104) cross-max multiplier."""
    types_ = (nn.ReLU, nn.ReLU6, nn.MaxPool2d)
    ax, _ = capture_inputs(model, x, types_)
    ar, _ = capture_inputs(model, ref, types_)
    mods = dict(model.named_modules())
    for name in ax:
        m = mods[name]
        d = (ax[name] - ar[name]).abs()
        if isinstance(m, nn.MaxPool2d):
            small = d[(d > 0) & (d < 1e-8)]
            if small.numel():
                return f"{name}: |dx| = {float(small.min()):.1e}"
            for a in (ax[name], ar[name]):
                gap, top = pool_top2_gaps(m, a)
                if ((gap > 0) & (gap < 1e-9) & (top > 0)).any():
                    return f"{name}: near-tie in a max-pool window"
        else:
            small = d[(d > 0) & (d < 1e-8)]
            if small.numel():
                return f"{name}: |dx| = {float(small.min()):.1e} at a nonlinearity"
            if name in pool_fed_names and bool((d == 0).any()):
                return f"{name}: dx == 0 at a nonlinearity that feeds a max-pool"
            kinks = (0.0, 6.0) if isinstance(m, nn.ReLU6) else (0.0,)
            for a in (ax[name], ar[name]):
                for kink in kinks:
                    if float((a - kink).abs().min()) < 1e-9:
                        return f"{name}: pre-activation within 1e-9 of {kink}"
    return None


# ------------------------------------------------------------------------------------------------------------------
# 5. LRP with zennit
# ------------------------------------------------------------------------------------------------------------------

def _nonlocals(fn):
    return inspect.getclosurevars(fn).nonlocals


def _stabilizer_eps(hook):
    stab_fn = _nonlocals(hook.gradient_mapper)["stabilizer_fn"]
    check(isinstance(stab_fn, Stabilizer) and not stab_fn.clip and not stab_fn.norm_scale,
          "unexpected stabilizer configuration")
    return float(stab_fn.epsilon)


def describe_hook(hook, low, high):
    """Rule descriptor of an attached zennit hook (None -> plain gradient)."""
    if hook is None:
        return {"rule": "gradient"}
    if type(hook) is Pass:
        return {"rule": "pass"}
    for pm in hook.param_modifiers:
        zp = getattr(pm, "zero_params", None)
        check(zp in (None, ["bias"]), f"unexpected zero_params {zp}")
    eps = _stabilizer_eps(hook)
    if type(hook) is Epsilon:
        return {"rule": "epsilon", "epsilon": eps}
    if type(hook) is Norm:
        return {"rule": "norm", "stabilizer": eps}
    if type(hook) is Gamma:
        return {"rule": "gamma", "gamma": float(_nonlocals(hook.param_modifiers[0].modifier)["gamma"]),
                "stabilizer": eps}
    if type(hook) is AlphaBeta:
        nl = _nonlocals(hook.reducer)
        return {"rule": "alphabeta", "alpha": float(nl["alpha"]), "beta": float(nl["beta"]), "stabilizer": eps}
    if type(hook) is ZPlus:
        return {"rule": "zplus", "stabilizer": eps}
    if type(hook) is ZBox:
        lo = _nonlocals(hook.input_modifiers[1])["low"]
        hi = _nonlocals(hook.input_modifiers[2])["high"]
        check(torch.equal(lo, low) and torch.equal(hi, high), "zbox bounds differ from the file's low/high")
        return {"rule": "zbox", "stabilizer": eps}
    if type(hook) is Flat:
        return {"rule": "flat", "stabilizer": eps}
    raise TypeError(f"unknown hook {hook}")


def attached_hook(module):
    hooks = [getattr(h, "__self__", None) for h in module._forward_pre_hooks.values()]
    hooks = [h for h in hooks if isinstance(h, Hook)]
    check(len(hooks) <= 1, "more than one zennit hook on a module")
    return hooks[0] if hooks else None


def epsilon_composite(canonizers):
    return LayerMapComposite(layer_map_base() + [(ztypes.Linear, Epsilon())], canonizers=canonizers)


LRP_CASES = [
    # name, composite factory (low, high, canonizers), seeds, record node relevance, use the canonizer
    ("epsilon_gamma_box", lambda lo, hi, c: EpsilonGammaBox(lo, hi, canonizers=c), ("onehot", "logit"), True, True),
    ("epsilon_plus_flat", lambda lo, hi, c: EpsilonPlusFlat(canonizers=c), ("onehot",), False, True),
    ("epsilon_alpha2_beta1", lambda lo, hi, c: EpsilonAlpha2Beta1(canonizers=c), ("onehot",), False, True),
    ("epsilon", lambda lo, hi, c: epsilon_composite(c), ("onehot", "logit"), True, True),
]
NODE_RELEVANCE_SEED = "logit"  # node relevances for the onehot seed would double the file size for little gain
NO_CANONIZER_CASE = ("epsilon_no_canonizer", lambda lo, hi, c: epsilon_composite(c), ("onehot", "logit"), False, False)
COMPOSITE_KEY = {"epsilon_gamma_box": "epsilon_gamma_box", "epsilon_plus_flat": "epsilon_plus_flat",
                 "epsilon_alpha2_beta1": "epsilon_alpha2_beta1", "epsilon": "epsilon",
                 "epsilon_no_canonizer": "epsilon"}


def run_zennit(model, composite, x, attr_output, record, info, low, high):
    """Run zennit; return (logits, input relevance, {node: relevance at its output}, {node: rule}, merged pairs)."""
    saved, handles, outputs_seen = {}, [], {}
    mods = dict(model.named_modules())
    xg = x.detach().clone().requires_grad_(True)
    with Gradient(model, composite) as attributor:
        names = {id(m): n for n, m in model.named_modules()}
        merged = [[names[id(lin)] for lin in inst.linears] + [names[id(inst.batch_norm)]]
                  for inst in composite.handles if isinstance(inst, MergeBatchNorm)]
        sums = {names[id(inst.module)]: attached_hook(inst.module.canonizer_sum)
                for inst in composite.handles if isinstance(inst, AttributeCanonizer)}
        rules = {}
        for name, d in info.items():
            if d["kind"] == "module":
                rules[name] = describe_hook(attached_hook(mods[d["target"]]), low, high)
            elif d["block"] in sums:
                check(name.startswith("add"), f"canonized block with a non-add function node {name}")
                rules[name] = describe_hook(sums[d["block"]], low, high)
            else:
                rules[name] = {"rule": "gradient"}
        check(len(sums) == sum(r["rule"] == "norm" and info[n]["kind"] == "function" for n, r in rules.items()),
              "every canonizer Sum must correspond to exactly one add node")
        # registered AFTER zennit's hooks: these see the module output and grab the (modified) gradient w.r.t. it
        for name in record:
            def fwd_hook(mod, inp, out, name=name):
                if id(out) in outputs_seen:
                    return  # the same tensor is another module's output (e.g. Dropout in eval): recorded there
                outputs_seen[id(out)] = (name, out)  # keep the tensor alive: ids must not be reused
                out.register_hook(lambda g, name=name: saved.__setitem__(name, g.detach().clone()))
            handles.append(mods[info[name]["target"]].register_forward_hook(fwd_hook))
        try:
            out, rel = attributor(xg, attr_output)
        finally:
            for h in handles:
                h.remove()
    for m in model.modules():
        check(attached_hook(m) is None, "zennit hooks not removed")
    return out.detach(), rel.detach().clone(), saved, rules, merged


def output_seeds(out, target):
    N, C = out.shape
    check(len(target) == N and len(set(target)) == N and all(0 <= t < C for t in target), "bad targets")
    onehot = torch.zeros_like(out)
    onehot[torch.arange(N), torch.tensor(target)] = 1.0
    return {"logit": out * onehot, "onehot": onehot}


# ------------------------------------------------------------------------------------------------------------------
# 6. Independent LRP replay from the JSON alone (no zennit): what the Rust side has to compute
# ------------------------------------------------------------------------------------------------------------------

def _stab(z, eps):
    return z + eps * torch.where(z >= 0, 1.0, -1.0)


def _affine(nd, p):
    if nd["op"] == "dense":
        def fwd(a, W):
            return F.linear(a, W)

        def bias(b):
            return b
    else:
        def fwd(a, W):
            return F.conv2d(a, W, None, nd["stride"], nd["padding"], nd["dilation"], nd["groups"])

        def bias(b):
            return b[None, :, None, None]
    W = _t(p["weight"])
    b = bias(_t(p["bias"])) if p["bias"] is not None else torch.zeros(())
    return fwd, W, b


def _vjp(f, a, s):
    a0 = a.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        g, = torch.autograd.grad(f(a0), a0, grad_outputs=s)
    return g


def replay_affine(rule, nd, p, a, R, low, high):
    fwd, W, b = _affine(nd, p)

    def vjp(W_, s, like=a):
        return _vjp(lambda t: fwd(t, W_), like, s)
    Wp, Wn, ap, an = W.clamp(min=0), W.clamp(max=0), a.clamp(min=0), a.clamp(max=0)
    r = rule["rule"]
    if r == "epsilon":
        s = R / _stab(fwd(a, W) + b, rule["epsilon"])
        return a * vjp(W, s)
    if r == "gamma":
        g, eps = rule["gamma"], rule["stabilizer"]
        Wup, Wdn = W + g * Wp, W + g * Wn
        z = fwd(a, W) + b
        dpos = fwd(ap, Wup) + fwd(an, Wdn) + b + g * b.clamp(min=0)
        dneg = fwd(ap, Wdn) + fwd(an, Wup) + b + g * b.clamp(max=0)
        spos = (z > 0) * R / _stab(dpos, eps)
        sneg = (z < 0) * R / _stab(dneg, eps)
        return ap * vjp(Wup, spos) + an * vjp(Wdn, spos) + ap * vjp(Wdn, sneg) + an * vjp(Wup, sneg)
    if r in ("alphabeta", "zplus"):
        al, be = (rule["alpha"], rule["beta"]) if r == "alphabeta" else (1.0, 0.0)
        eps = rule["stabilizer"]
        sa = R / _stab(fwd(ap, Wp) + fwd(an, Wn) + b.clamp(min=0), eps)
        res = al * (ap * vjp(Wp, sa) + an * vjp(Wn, sa))
        if be != 0:
            si = R / _stab(fwd(ap, Wn) + fwd(an, Wp) + b.clamp(max=0), eps)
            res = res - be * (ap * vjp(Wn, si) + an * vjp(Wp, si))
        return res
    if r == "zbox":
        lo, hi = low.expand_as(a), high.expand_as(a)
        s = R / _stab(fwd(a - lo, Wp) + fwd(a - hi, Wn), rule["stabilizer"])
        return (a - lo) * vjp(Wp, s) + (a - hi) * vjp(Wn, s)
    if r == "flat":
        ones_w = torch.ones_like(W)
        s = R / _stab(fwd(torch.ones_like(a), ones_w), rule["stabilizer"])
        return vjp(ones_w, s)
    raise ValueError(r)


def merged_params(nodes, merges):
    """Node parameters after zennit's merge_batch_norm (HEAD semantics) for the recorded [linear..., bn] groups."""
    byname = {nd["name"]: nd for nd in nodes}
    params = {}
    for group in merges:
        *lins, bn_name = group
        bn = byname[bn_name]
        mean, var, gw, gb = _t(bn["mean"]), _t(bn["var"]), _t(bn["weight"]), _t(bn["bias"])
        scale = gw / (var + bn["eps"]) ** 0.5
        for lin_name in lins:
            nd = dict(params.get(lin_name, byname[lin_name]))
            W = _t(nd["weight"])
            b = _t(nd["bias"]) if nd["bias"] is not None else torch.zeros(1)
            nd["weight"] = tensor_json(W * scale[(slice(None),) + (None,) * (W.ndim - 1)])
            nd["bias"] = tensor_json((b - mean) * scale + gb)
            params[lin_name] = nd
        params[bn_name] = dict(bn, mean=tensor_json(torch.zeros_like(mean)), var=tensor_json(torch.ones_like(var)),
                               weight=tensor_json(torch.ones_like(gw)), bias=tensor_json(torch.zeros_like(gb)), eps=0.0)
    return params


def replay_lrp(fx, case):
    """Recompute a case from the JSON: returns (input relevance, {node: relevance at its output}, absorbed)."""
    nodes = fx["nodes"]
    low, high = _t(fx["low"])[None], _t(fx["high"])[None]
    params = merged_params(nodes, case["merged"])
    vals = graph_forward(nodes, _t(fx["input"]), params=params)
    out = vals[fx["output"]]
    N = out.shape[0]
    onehot = torch.zeros_like(out)
    onehot[torch.arange(N), torch.tensor(fx["target"])] = 1.0
    rel = {fx["output"]: out * onehot if case["seed"] == "logit" else onehot}
    absorbed = torch.zeros(N)
    for nd in reversed(nodes):
        name, op = nd["name"], nd["op"]
        R = rel.pop(name, None)
        if R is None:
            R = torch.zeros_like(vals[name])
        rel[name + "@out"] = R
        rule = case["rules"][name]["rule"]
        ins = [vals[i] for i in nd["inputs"]]
        a = ins[0]
        if op in ("conv2d", "dense"):
            Rin = [replay_affine(case["rules"][name], nd, params.get(name, nd), a, R, low, high)]
            absorbed += R.flatten(1).sum(1) - Rin[0].flatten(1).sum(1)
        elif op in ("batchnorm", "relu", "relu6", "sigmoid", "tanh"):
            check(rule == "pass", f"{name}: expected Pass, got {rule}")
            Rin = [R]
        elif op == "adaptive_avgpool2d" or op == "avgpool2d":
            check(rule == "norm", f"{name}: expected Norm, got {rule}")

            def f(t, nd=nd):
                return graph_forward([dict(nd, inputs=["input"])], t)[nd["name"]]
            s = R / _stab(f(a), case["rules"][name]["stabilizer"])
            Rin = [a * _vjp(f, a, s)]
        elif op in ("maxpool2d", "identity", "flatten"):
            check(rule == "gradient", f"{name}: expected gradient, got {rule}")

            def f(t, nd=nd):
                return graph_forward([dict(nd, inputs=["input"])], t)[nd["name"]]
            Rin = [_vjp(f, a, R)]
        elif op == "add":
            if rule == "gradient":
                Rin = [R, R]
            else:
                check(rule == "norm", f"{name}: rule {rule}")
                s = R / _stab(ins[0] + ins[1], case["rules"][name]["stabilizer"])
                Rin = [ins[0] * s, ins[1] * s]
        elif op == "concat":
            check(rule == "gradient", f"{name}: rule {rule}")
            Rin = list(torch.split(R, [t.shape[nd["axis"] + 1] for t in ins], dim=nd["axis"] + 1))
        else:
            raise ValueError(op)
        for i, r in zip(nd["inputs"], Rin):
            rel[i] = rel[i] + r if i in rel else r
    node_rel = {k[:-4]: v for k, v in rel.items() if k.endswith("@out")}
    return rel["input"], node_rel, absorbed


# ------------------------------------------------------------------------------------------------------------------
# 7. DeepLIFT with captum, and its independent replay
# ------------------------------------------------------------------------------------------------------------------

def _basic_block_forward_two_relus(self, x):
    """torchvision's BasicBlock.forward with a second ReLU module for the second use (captum refuses reuse)."""
    identity = x
    out = self.conv1(x)
    out = self.bn1(out)
    out = self.relu(out)
    out = self.conv2(out)
    out = self.bn2(out)
    if self.downsample is not None:
        identity = self.downsample(x)
    out += identity
    out = self.relu2(out)
    return out


def captum_model(name, model):
    mc = copy.deepcopy(model)
    if name == "resnet":
        for m in mc.modules():
            if isinstance(m, BasicBlock):
                m.relu2 = nn.ReLU(inplace=True)
                m.forward = types.MethodType(_basic_block_forward_two_relus, m)
    return mc.eval()


def run_captum(model, x, target, baselines, shap):
    xg = x.clone().requires_grad_(True)
    if shap:
        attr, delta = DeepLiftShap(model, multiply_by_inputs=True).attribute(
            xg, baselines=baselines, target=target, return_convergence_delta=True)
        delta = delta.reshape(x.shape[0], -1).mean(1)
    else:
        attr, delta = DeepLift(model, multiply_by_inputs=True, eps=DL_EPS).attribute(
            xg, baselines=baselines, target=target, return_convergence_delta=True)
    return attr.detach(), delta.detach()


class _Rescale(torch.autograd.Function):
    """y = f(x); backward multiplier (f(x) - f(x_ref)) / (x - x_ref), or f'(x) where |x - x_ref| < eps (captum)."""

    @staticmethod
    def forward(ctx, a, ar, op):
        f = F.relu if op == "relu" else F.relu6
        y, yr = f(a), f(ar)
        dx = a - ar
        grad = ((a > 0) if op == "relu" else ((a > 0) & (a < 6))).to(a.dtype)
        ctx.save_for_backward(torch.where(dx.abs() < DL_EPS, grad, (y - yr) / dx))
        return y

    @staticmethod
    def backward(ctx, g):
        m, = ctx.saved_tensors
        return g * m, None, None


def replay_deeplift(fx, case):
    """captum DeepLift (Rescale at ReLU/ReLU6, plain gradient at max-pools, linear elsewhere) from the JSON alone."""
    nodes = fx["nodes"]
    x = _t(fx["input"])
    N = x.shape[0]
    b = _t(case["baselines"])
    refs = [b[k:k + 1].expand_as(x) for k in range(b.shape[0])] if case["baseline_kind"] == "distribution" else \
        [b.expand_as(x)]
    check(case["max_pool"] == "gradient" or not any(nd["op"] == "maxpool2d" for nd in nodes),
          "the replay implements the gradient max-pool mode only")
    pre = {nd["name"]: nd["inputs"][0] for nd in nodes}
    attrs = []
    for ref in refs:
        rvals = graph_forward(nodes, ref)
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            vals = graph_forward(nodes, xg, nonlin=lambda name, op, a: _Rescale.apply(a, rvals[pre[name]], op))
            out = vals[fx["output"]]
            sel = out[torch.arange(N), torch.tensor(fx["target"])]
            g, = torch.autograd.grad(sel.sum(), xg)
        attrs.append((x - ref) * g)
    return torch.stack(attrs, 1).mean(1)


# ------------------------------------------------------------------------------------------------------------------
# 8. One model
# ------------------------------------------------------------------------------------------------------------------

def draw(name, spec, low, high):
    rejected = []
    for seed in range(spec["seed"], spec["seed"] + 1000):
        gen = torch.Generator().manual_seed(seed)
        model = build_model(spec["cls"], gen, spec.get("relu6_bn_gain", 1.0))
        x = make_input(gen, spec["input_shape"])
        nodes, output, info = export_graph(model)
        reason = lrp_gate(model, spec["canonizer"][1](model), x, nodes)
        if reason is None:
            mc = captum_model(name, model)
            zero = torch.zeros((1,) + spec["input_shape"])
            for i in range(BATCH):
                reason = reason or dl_gate(mc, x[i:i + 1], zero, pool_fed(nodes))
        if reason is None:
            if rejected:
                print(f"    rejected {len(rejected)} seed(s); last: {rejected[-1]}")
            return seed, model, x, nodes, output, info
        rejected.append(f"seed {seed}: {reason}")
    raise RuntimeError(f"{name}: no acceptable seed")


def dl_margins(mc, x, refs):
    """Over all (sample, baseline) pairs: min distance of a ReLU/ReLU6 pre-activation to a kink, min nonzero |dx| at a
    nonlinearity, number of exact dx == 0 at a nonlinearity (captum then uses the gradient at x)."""
    kink, small, zeros = math.inf, math.inf, 0
    types_ = (nn.ReLU, nn.ReLU6)
    mods = dict(mc.named_modules())
    for i in range(x.shape[0]):
        ax, _ = capture_inputs(mc, x[i:i + 1], types_)
        for r in refs[i]:
            ar, _ = capture_inputs(mc, r[None], types_)
            for n in ax:
                d = (ax[n] - ar[n]).abs()
                zeros += int((d == 0).sum())
                if (d > 0).any():
                    small = min(small, float(d[d > 0].min()))
                for a in (ax[n], ar[n]):
                    for k in ((0.0, 6.0) if isinstance(mods[n], nn.ReLU6) else (0.0,)):
                        kink = min(kink, float((a - k).abs().min()))
    return kink, small, zeros


def draw_baselines(mc, x, count, gen, fed):
    for _ in range(1000):
        b = short(torch.randn((count,) + tuple(x.shape[1:]), generator=gen) * BASELINE_STD)
        bad = [dl_gate(mc, x[i:i + 1], b[j:j + 1], fed) for i in range(x.shape[0]) for j in range(count)]
        bad = [r for r in bad if r]
        if not bad:
            return b
        print(f"    redraw baselines ({bad[0]})")
    raise RuntimeError("no acceptable baseline draw")


def draw_per_sample(mc, x, gen, fed):
    for _ in range(1000):
        b = short(torch.randn(x.shape, generator=gen) * BASELINE_STD)
        bad = [dl_gate(mc, x[i:i + 1], b[i:i + 1], fed) for i in range(x.shape[0])]
        bad = [r for r in bad if r]
        if not bad:
            return b
        print(f"    redraw baselines ({bad[0]})")
    raise RuntimeError("no acceptable baseline draw")


def check_canonizer(name, spec, model, x, plain):
    """The canonizer leaves the logits unchanged (HEAD eps semantics) and is removed cleanly."""
    bn_eps = {n: m.eps for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    set_head_merge(False)
    try:
        out051, _, merged051 = canonized_logits(model, spec["canonizer"][1](model), x)
    finally:
        set_head_merge(True)
    dev051 = max_rel(out051, plain)
    check(dev051 > 1e-8, f"{name}: zennit 0.5.1 merge unexpectedly exact ({dev051:.1e})")
    out, instances, merged = canonized_logits(model, spec["canonizer"][1](model), x)
    dev = assert_close(out, plain, 1e-10, f"{name}: canonized logits")
    check(torch.equal(forward(model, x), plain), f"{name}: canonizer removal did not restore the model")
    check({n: m.eps for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)} == bn_eps, "eps not restored")
    names = {id(m): n for n, m in model.named_modules()}
    pairs = sorted([names[id(l)] for l in inst.linears] + [names[id(inst.batch_norm)]] for inst in merged)
    print(f"  canonizer {spec['canonizer'][0]}: {len(pairs)} merge(s); max rel logit deviation {dev:.1e} "
          f"(zennit 0.5.1 eps semantics: {dev051:.1e})")
    # the merges are data-flow correct: the BN's only input is the linear layer's output
    nodes, _, _ = export_graph(model)
    byname = {nd["name"]: nd for nd in nodes}
    for *lins, bn in pairs:
        check(byname[bn]["inputs"] == lins, f"{name}: merge {lins} -> {bn} is not a data-flow pair")
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    expected_unmerged = {"densenet": n_bn - len(densenet_merge_pairs(model))}.get(name, 0)
    check(len(pairs) == n_bn - expected_unmerged, f"{name}: {len(pairs)} merges for {n_bn} BNs")
    if name == "densenet":  # on a copy: a failing merge leaves the modules it already changed modified
        try:
            out_seq, _, _ = canonized_logits(copy.deepcopy(model), [SequentialMergeBatchNorm()], x)
            dev_seq = max_rel(out_seq, plain)
            check(dev_seq > 1e-6, f"densenet: SequentialMergeBatchNorm unexpectedly keeps the output ({dev_seq:.1e})")
            print(f"  densenet: SequentialMergeBatchNorm (wrong pairs) changes the logits by {dev_seq:.2e} (relative)")
        except RuntimeError as e:
            check("size of tensor" in str(e), f"unexpected error {e}")
            print(f"  densenet: SequentialMergeBatchNorm raises on the wrong pair (conv2 -> next norm1): "
                  f"{str(e).splitlines()[0]}")
    return dev, dev051


def generate(name, spec):
    low, high = bounds()
    print(f"[{name}]")
    seed, model, x, nodes, output, info = draw(name, spec, low, high)
    plain = forward(model, x)
    target = spec["target"]
    gap_pool = {}
    pools, _ = capture_inputs(model, x, nn.MaxPool2d)
    mods = dict(model.named_modules())
    for pn, a in pools.items():
        gap, top = pool_top2_gaps(mods[pn], a)
        gap_pool[pn] = (float(gap[top > 0].min()), int((top <= 0).sum()), top.numel())
    cond, where = conditioning(model, x)
    print(f"  seed {seed}; logits {[[round(float(v), 4) for v in row] for row in plain]}")
    print(f"  max-pool (min gap, all-zero windows, windows): {gap_pool}; min |z|/sum|terms| {cond:.2e} at {where}")
    relu6_in, _ = capture_inputs(model, x, nn.ReLU6)
    if relu6_in:
        print(f"  ReLU6 inputs above 6: {sum(int((a > 6).sum()) for a in relu6_in.values())} of "
              f"{sum(a.numel() for a in relu6_in.values())}")

    # ---- canonizer ----
    canon_dev, canon_dev051 = check_canonizer(name, spec, model, x, plain)

    # ---- graph export, independent forward ----
    fwd_dev = assert_close(graph_forward(nodes, x)[output], plain, 1e-12, f"{name}: JSON forward")
    print(f"  fx graph: {len(nodes)} nodes ({collections.Counter(nd['op'] for nd in nodes)}); "
          f"JSON forward deviation {fwd_dev:.1e}")

    fixture = {
        "generator": GENERATOR,
        "zennit_version": _pkg_version("zennit"),
        "captum_version": _pkg_version("captum"),
        "torch_version": torch.__version__,  # with the build's local tag (+cpu, +cu132), which metadata lacks
        "torchvision_version": torchvision.__version__,
        "name": name,
        "input_shape": list(spec["input_shape"]),
        "nodes": nodes,
        "output": output,
        "low": tensor_json(low[0]),
        "high": tensor_json(high[0]),
        "input": tensor_json(x),
        "logits": tensor_json(plain),
        "target": list(target),
        "canonizer": spec["canonizer"][0],
        "lrp_cases": [],
        "deeplift_cases": [],
    }
    check(bool(((x >= low) & (x <= high)).all()), "input outside [low, high]")

    # ---- LRP ----
    seeds = output_seeds(plain, target)
    record = [n for n, d in info.items() if d["kind"] == "module" and d["calls"] == 1]
    cases = list(LRP_CASES) + ([NO_CANONIZER_CASE] if name == "resnet" else [])
    for cname, factory, seed_names, rec_any, use_canon in cases:
        for seed_name in seed_names:
            rec = rec_any and seed_name == NODE_RELEVANCE_SEED
            canonizers = spec["canonizer"][1](model) if use_canon else []
            composite = factory(low, high, canonizers)
            out, rel, saved, rules, merged = run_zennit(model, composite, x, seeds[seed_name],
                                                        record if rec else [], info, low, high)
            what = f"{name}/{cname}/{seed_name}"
            assert_close(out, plain, 1e-10, f"{what}: logits under zennit")
            check(torch.isfinite(rel).all(), f"{what}: NaN/inf")
            check(float(rel.flatten(1).abs().max(1).values.min()) > 1e-8, f"{what}: a sample has all-zero relevance")
            case = {"name": cname, "composite": COMPOSITE_KEY[cname],
                    "canonizer": spec["canonizer"][0] if use_canon else "none", "seed": seed_name,
                    "merged": sorted(merged), "rules": rules, "relevance": tensor_json(rel)}
            if not use_canon:
                check(not merged, "merges without canonizer")
                case["gradient_nodes"] = [nd["name"] for nd in nodes if nd["op"] == "add"]
                check(all(rules[g]["rule"] == "gradient" for g in case["gradient_nodes"]), "add must be gradient")
            if rec:
                case["node_relevance"] = {n: tensor_json(saved[n]) for n in record if n in saved}
                skipped = [n for n in record if n not in saved]
            # replay from the JSON alone
            fx_case = json.loads(json.dumps(case))
            r_in, node_rel, absorbed = replay_lrp({**fixture, "input": tensor_json(x)}, fx_case)
            dev = assert_close(r_in, rel, 1e-10, f"{what}: replay input relevance")
            for n, tj in case.get("node_relevance", {}).items():
                dev = max(dev, assert_close(node_rel[n], _t(tj), 1e-10, f"{what}: replay relevance at {n}"))
            fixture["lrp_cases"].append(case)
            sums = rel.flatten(1).sum(1)
            extra = f", skipped (same tensor as another module's output): {skipped}" if rec and skipped else ""
            print(f"  lrp {cname:21s} {seed_name:6s} sum R_in {[round(float(v), 5) for v in sums]}; "
                  f"replay dev {dev:.1e}{extra}")
            if cname == "epsilon" and seed_name == "logit":
                fc = plain[torch.arange(BATCH), torch.tensor(target)]
                print(f"    epsilon/logit: sum R_in / f_c = {[round(float(v), 4) for v in sums / fc]}; absorbed by "
                      f"biases+eps {[round(float(v), 4) for v in absorbed]}; (sum R_in + absorbed) / f_c = "
                      f"{[round(float(v), 6) for v in (sums + absorbed) / fc]}")

    # ---- DeepLIFT ----
    mc = captum_model(name, model)
    check(torch.equal(forward(mc, x), plain), "captum copy changes the logits")
    gen = torch.Generator().manual_seed(spec["seed"] + 500)
    zero = torch.zeros((1,) + spec["input_shape"])
    fed = pool_fed(nodes)
    baselines = [("zero", zero), ("shared", draw_baselines(mc, x, 1, gen, fed)),
                 ("per_sample", draw_per_sample(mc, x, gen, fed)),
                 ("distribution", draw_baselines(mc, x, K_SHAP, gen, fed))]
    has_pool = any(nd["op"] == "maxpool2d" for nd in nodes)
    relu_before_pool = any(nd["op"] == "maxpool2d" and next(p for p in nodes if p["name"] == nd["inputs"][0])["op"]
                           in ("relu", "relu6") for nd in nodes)
    max_pool = "gradient" if relu_before_pool else "cross_max"
    check(not has_pool or relu_before_pool, f"{name}: a max-pool not preceded by a ReLU: cross-max is not replayed")
    deltas = {}
    idx = torch.arange(BATCH)
    tt = torch.tensor(target)
    for kind, b in baselines:
        shap = kind == "distribution"
        given = b.repeat((BATCH,) + (1,) * (x.ndim - 1)) if kind == "shared" else b
        attr, captum_delta = run_captum(mc, x, target, given, shap)
        delta = -captum_delta
        refs = b if shap else b.expand_as(x)
        fr = forward(mc, refs)
        fr_c = torch.stack([fr[:, t] for t in target]).mean(1) if shap else fr[idx, tt]
        total = plain[idx, tt] - fr_c
        check(torch.isfinite(attr).all(), "non-finite attribution")
        check(float(attr.flatten(1).abs().max(1).values.min()) > 1e-8, f"{name}/{kind}: a sample has zero attribution")
        check(float((total - attr.flatten(1).sum(1) - delta).abs().max()) < 1e-10, f"{name}/{kind}: delta bookkeeping")
        case = {"name": f"deeplift_{kind}" if kind != "distribution" else "deeplift_shap",
                "captum": "DeepLiftShap" if shap else "DeepLift", "baseline_kind": kind, "baselines": tensor_json(b),
                "max_pool": max_pool, "eps": DL_EPS, "attribution": tensor_json(attr), "total": tensor_json(total),
                "delta": tensor_json(delta)}
        rep = replay_deeplift({**fixture, "input": tensor_json(x)}, json.loads(json.dumps(case)))
        rdev = assert_close(rep, attr, 1e-10, f"{name}/{kind}: DeepLIFT replay")
        worst = float(delta.abs().max())
        deltas[kind] = worst
        if max_pool != "gradient":
            check(worst < 1e-10, f"{name}/{kind}: captum did not conserve ({worst:.2e})")
        pairs = [list(b)] * BATCH if kind in ("zero", "shared", "distribution") else [[r] for r in b]
        kink, small, zeros = dl_margins(mc, x, pairs)
        print(f"  deeplift {kind:12s} max_pool={max_pool:9s} max|delta| {worst:.2e}; replay dev {rdev:.1e}; "
              f"min dist to kink {kink:.1e}, min nonzero |dx| {small:.1e}, dx == 0: {zeros}")
        fixture["deeplift_cases"].append(case)
    if max_pool == "gradient":
        worst = max(v for k, v in deltas.items() if k != "zero")
        check(worst > 1e-6, f"{name}: captum conserved with a ReLU before the pool -- has issue #1104 been fixed?")
    if any(nd["op"] == "relu6" for nd in nodes):  # without the registration ReLU6 gets the plain gradient
        unregister_relu6_in_captum()
        try:
            _, d6 = run_captum(mc, x, target, baselines[2][1], False)
        finally:
            register_relu6_in_captum()
        check(float(d6.abs().max()) > 1e-6, f"{name}: ReLU6 without registration conserves?")
        print(f"  (captum without the ReLU6 registration: max|delta| {float(d6.abs().max()):.2e} on per_sample)")
    return fixture, {"canonizer": canon_dev, "canonizer_051": canon_dev051, "deeplift": deltas}


def _pkg_version(pkg):
    from importlib.metadata import version
    return version(pkg)


def measure_unpatched(name, spec, fixture_dir):
    """Re-runs the cases of the committed fixture graph_{name}.json with the libraries as released, one patch of this
    script undone at a time, and returns {patch: (max relative deviation from the fixture, cases)}:
    "merge_eps" -- zennit's MergeBatchNorm as in 0.5.1 (the BN's eps stays: every LRP case with a canonizer);
    "inverted_residual" -- mobilenet without this script's InvertedResidualCanonizer (zennit has none for MobileNetV2:
    SequentialMergeBatchNorm alone, the residual `+` stays functional); "captum_relu6" -- captum without ReLU6 in
    SUPPORTED_NON_LINEAR (mobilenet's DeepLIFT cases). Nothing is written. The deviation is max|a - b| / max(1, max|b|)
    per array (the relevance and attributions are of order 1 here, so it is close to the Rust tests' relative one)."""
    with open(os.path.join(fixture_dir, f"graph_{name}.json")) as f:
        fx = json.load(f)
    low, high = bounds()
    _, model, x, _, _, info = draw(name, spec, low, high)
    check(torch.equal(x, _t(fx["input"])), f"{name}: not the fixture's draw")
    plain = forward(model, x)
    seeds = output_seeds(plain, spec["target"])
    factories = {c[0]: c[1] for c in LRP_CASES}
    out = {}

    def lrp(canonizers_of, what):
        worst, n = 0.0, 0
        for case in fx["lrp_cases"]:
            if case["canonizer"] == "none":
                continue
            composite = factories[case["name"]](low, high, canonizers_of(model))
            _, rel, _, _, _ = run_zennit(model, composite, x, seeds[case["seed"]], [], info, low, high)
            worst, n = max(worst, max_rel(rel, _t(case["relevance"]))), n + 1
        out[what] = (worst, n)

    set_head_merge(False)
    try:
        lrp(spec["canonizer"][1], "merge_eps")
    finally:
        set_head_merge(True)
    if name == "mobilenet":
        lrp(lambda m: [SequentialMergeBatchNorm()], "inverted_residual")
        unregister_relu6_in_captum()
        try:
            mc = captum_model(name, model)
            worst, n = 0.0, 0
            for case in fx["deeplift_cases"]:
                b = _t(case["baselines"])
                shap = case["baseline_kind"] == "distribution"
                given = b.repeat((BATCH,) + (1,) * (x.ndim - 1)) if case["baseline_kind"] == "shared" else b
                attr, _ = run_captum(mc, x, spec["target"], given, shap)
                worst, n = max(worst, max_rel(attr, _t(case["attribution"]))), n + 1
            out["captum_relu6"] = (worst, n)
        finally:
            register_relu6_in_captum()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures)")
    ap.add_argument("--only", nargs="*", default=None, help="subset of models (resnet vgg_bn densenet mobilenet)")
    ap.add_argument("--unpatched", action="store_true",
                    help="write nothing; re-run the committed fixtures' cases with each patch of this script undone "
                         "and print how far the released libraries' results are from the fixtures")
    args = ap.parse_args()
    print(f"zennit {_pkg_version('zennit')}, captum {_pkg_version('captum')}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}")
    set_head_merge(True)
    register_relu6_in_captum()
    if args.unpatched:
        for name, spec in MODELS.items():
            if args.only and name not in args.only:
                continue
            for patch, (worst, n) in measure_unpatched(name, spec, args.out).items():
                print(f"UNPATCHED {name} {patch}: max relative deviation from the fixture {worst:.2e} over {n} cases")
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name, spec in MODELS.items():
        if args.only and name not in args.only:
            continue
        fixture, _ = generate(name, spec)
        text = json.dumps(fixture, separators=(",", ":"), allow_nan=False)
        path = os.path.join(args.out, f"graph_{name}.json")
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"wrote {os.path.normpath(path)} ({len(text) / 1e3:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
