#!/usr/bin/env python3
"""Generate the ONNX test corpus tests/fixtures/onnx/: small-width torchvision classifier families exported by the real
PyTorch ONNX exporters (TorchScript-based and dynamo-based, with and without a dynamic batch, inline and external
weights), each with onnxruntime's logits on 3 fixed inputs, and a manifest describing what every file contains (op
types, opset, attribute patterns). It shows what real exporters write, for the crate's ONNX importer.

How to run (from the repository root; nothing is installed into the repository):

    python3 -m venv ~/venv && ~/venv/bin/pip install torch torchvision onnx onnxruntime onnxscript numpy
    ~/venv/bin/python tools/gen_onnx_corpus.py             # writes tests/fixtures/onnx/ (about 2 minutes)
    ~/venv/bin/python tools/gen_onnx_corpus.py --out DIR   # write somewhere else (e.g. to diff two runs)
    ~/venv/bin/python tools/gen_onnx_corpus.py --only resnet densenet

The corpus was produced with torch 2.15 (CPU), torchvision 0.29, onnx 1.23, onnxruntime 1.32, onnxscript 0.7; the
versions are written into the manifest. The script is deterministic (fixed seeds, one CPU thread, onnxruntime with one
thread): re-running it with the same versions gives the same manifest (logits bit-identical); the sha256 of every
.onnx / .data file is recorded so that a diff shows whether an exporter wrote byte-identical files.

The hand-picked published models in tests/fixtures/onnx/real/ (provenance and licences: NOTICE and their manifest entries) are not
produced by this script (they were copied unmodified from their sources; REAL_MODELS below pins their sha256); it
only re-runs them with onnxruntime on 3 inputs each (real MNIST test digits from data/digits_test.bin for the MNIST
models) and writes their manifest entries (--skip-real leaves them out).

Models (eval mode, float32, num_classes = 10)
------
Built from torchvision's own classes and blocks, so that the exported graphs look like those of the real networks,
with reduced widths / depths so that every file stays well below 1 MB:

* resnet:        torchvision.models.ResNet subclass with widths 8/16/32/64 (torchvision hard-codes 64..512), BasicBlock,
                 layers [1, 1, 1, 1]; the real stem (7x7/2 conv, BN, ReLU, MaxPool 3/2/1), AdaptiveAvgPool2d((1, 1)),
                 flatten, fc. ResNet.forward is torchvision's. Input 3x48x48.
* vgg_bn:        torchvision.models.VGG(make_layers([8, 'M', 16, 'M', 32, 'M'], batch_norm=True)) with its
                 AdaptiveAvgPool2d((7, 7)) and the classifier reduced to 32*7*7 -> 32 -> 32 -> 10 (same
                 Linear/ReLU/Dropout layout). Input 3x56x56, so the adaptive pool sees 7x7 (as VGG at 224).
* vgg_bn_cifar:  the same network at 3x32x32: the adaptive pool UPSAMPLES 4x4 -> 7x7 (overlapping, non-integral
                 windows), what happens when torchvision's VGG is run on CIFAR-sized images.
* mobilenet_v2:  torchvision.models.MobileNetV2(width_mult=0.25, inverted_residual_setting = the first four rows of the
                 real table, with one block per row except the residual one). ReLU6 (Clip), depthwise convs, residual
                 adds, last 1x1 conv to 1280 channels as in the real net. Input 3x48x48.
* mobilenet_v3:  torchvision.models.mobilenetv3.MobileNetV3 from its InvertedResidualConfig (width_mult 0.5, the first
                 five rows of mobilenet_v3_small: SE + ReLU, no SE + ReLU, SE + Hardswish with residual), last_channel
                 128: Hardswish, Hardsigmoid squeeze-excitation gates (Mul of two computed tensors). Input 3x48x48.
* squeezenet:    torchvision.models.SqueezeNet('1_1') with every Fire width divided by 8 (torchvision's Fire modules;
                 stem conv 3x3/2 without padding, MaxPool 3/2 ceil_mode=True, concatenations, final 1x1 conv + ReLU +
                 AdaptiveAvgPool2d((1, 1)); logits are >= 0 by construction). Input 3x48x48.
* densenet:      torchvision.models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2) with
                 the real stem (7x7/2 conv, BN, ReLU, MaxPool 3/2/1), transition AvgPool 2/2, functional ReLU and
                 adaptive_avg_pool2d at the end; BNs after concatenations cannot be folded into a conv. Input 3x32x32.
* efficientnet:  torchvision.models.EfficientNet with three MBConvConfig stages of the B0 table (width_mult 0.25:
                 expand 1 / 6 / 6, kernels 3 / 3 / 5, strides 1 / 2 / 2, 1 / 2 / 1 layers), last_channel 64: SiLU,
                 squeeze-excitation with a Sigmoid gate, StochasticDepth (identity in eval), Dropout. Input 3x32x32.
* shufflenet_v2: torchvision.models.ShuffleNetV2(stages_repeats=[2, 1, 1], stages_out_channels=[8, 16, 32, 64, 128]):
                 channel shuffle (Reshape / Transpose / Reshape of DATA tensors), chunk (Split / Slice), x.mean([2, 3])
                 as global pool. Input 3x48x48.
* googlenet:     torchvision.models.GoogLeNet(aux_logits=False, transform_input=False) with small BasicConv2d stems and
                 Inception blocks 3a, 3b, 4a, 5a (widths / 8 or so), 4b-4e and 5b replaced by nn.Identity; MaxPool
                 ceil_mode=True (also in the Inception pool branch, 3/1/1), 4-way concatenations, BN eps 1e-3. Input
                 3x48x48.
* alexnet:       torchvision.models.AlexNet with features / classifier rebuilt with widths 8/16/24/16/16 and 64-unit
                 hidden layers (same layer types and kernel/stride/padding); at 3x64x64 the features end at 1x1, and
                 AdaptiveAvgPool2d((6, 6)) upsamples (the TorchScript exporter cannot export that: recorded failure).

Weights: torchvision's own initialisation (fixed seed), then every conv / linear bias ~ N(0, 0.1^2) (torchvision
zero-initialises most of them) and SqueezeNet's final conv re-drawn with Kaiming std (torchvision's N(0, 0.01^2) gives
~0 logits). Batch norms get NON-TRIVIAL statistics: the running statistics are first measured on a calibration batch
(train-mode forward of 16 random images, momentum None) so that activations stay O(1) through the depth, then
running_mean += N(0, 0.3^2) * sqrt(running_var), running_var *= U(0.5, 2), weight ~ U(0.5, 1.5), bias ~ N(0, 0.2^2)
(BN folding bugs would otherwise stay invisible).

Inputs: per family 3 "images" u ~ U(0, 1), normalised with the ImageNet mean / std and rounded to 2 decimals (float64
written to JSON; cast to float32 they are exactly what was fed to onnxruntime).

Exporters (each model with each)
---------
* torchscript:        torch.onnx.export(model, x1, f, dynamo=False, opset_version=13, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"},
                      "logits": {0: "batch"}})   (x1 = a batch-1 example)
* torchscript_static: the same without dynamic_axes, opset_version=11: the batch size 1 is a literal in the graph.
* dynamo:             torch.onnx.export(model, (x1,), f, dynamo=True, external_data=False): weights inline. NOTE: with
                      torch 2.15 the plain call torch.onnx.export(model, (x,), f, dynamo=True) writes the weights to an
                      external file (external_data defaults to True), i.e. the dynamo_external variant below. The
                      dynamo exporter keeps the example's static batch 1 unless dynamic_shapes is given.
* dynamo_external:    torch.onnx.export(model, (x1,), f, dynamo=True) (default external_data=True): weights in
                      "<name>.onnx.data" next to the model (location relative to the model file).
* dynamo_dynamic:     torch.onnx.export(model, (x2,), f, dynamo=True, external_data=False,
                      dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}}) with a batch-2 example
                      (batch 1 would be specialised): a symbolic batch dimension, as the torchscript variant.
An exporter that raises is recorded in the manifest ("error": exception type and first line; "file": null), not
dropped.

What is checked (the script fails loudly otherwise)
---------------
1. Every model's float32 logits are finite and not degenerate (the 3 samples differ by > 1e-3 relative).
2. Every exported file: onnx.checker.check_model (full check on the file path, external data included) passes; the
   result of onnx.shape_inference.infer_shapes(strict_mode=True) is recorded (not asserted); no file exceeds 1 MB.
3. onnxruntime (CPU, float32, one thread) on the 3 inputs reproduces PyTorch's logits to 1e-4 relative (max|d| /
   max(1, max|torch|)); models with a literal batch 1 are run sample by sample. Every exporter of a family agrees.
4. Every JSON float round-trips (repr); every input value cast to float32 equals the value fed.

Manifest (tests/fixtures/onnx/manifest.json)
--------
{"generator", "versions": {...}, "entries": [...]}, one entry per (family, exporter) and per real model:
  name "<family>_<exporter>", family, exporter, file (relative to tests/fixtures/onnx/, null on failure),
  external_data [relative paths], input_name, output_name, input_shape (per sample), input_dims / output_dims (the
  graph's declared dims, a string for a symbolic dim), batch ("symbolic" | a literal), ops {op_type: count}
  (sorted), opset (default domain), opset_imports, ir_version, producer, initializers {count, dtypes: {dtype: n}},
  float16 / float64 (any initializer or Constant of that dtype), file_bytes, data_bytes, sha256 {file: hex},
  checker ("ok" | message), shape_inference ("ok" | message), patterns (see below), inputs {file, shape, dtype} (the float32
  samples as raw little-endian bytes in inputs/<family>.f32, shared by a family's exporters), logits T[3, 10],
  torch_max_rel (onnxruntime vs PyTorch), notes; failed entries have "error" instead of the file fields.
  Tensors are {"shape": [...], "data": [flat, C order]} with Python repr floats.
patterns: attribute / structure facts the importer must handle: per op type the distinct attribute sets with counts
  ("attrs"), Identity nodes reading an initializer, Constant nodes (and their dtypes), Clip with min/max as inputs or
  attributes, Mul/Add/Concat whose inputs are all computed tensors, Reshape target shapes (literal batch or 0 / -1),
  Conv / pool ops with asymmetric pads or auto_pad, Gemm transA/transB/alpha/beta, ops reading a Shape.
"""
import argparse
import collections
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import onnx
import onnx.shape_inference
import onnxruntime as ort
import torch
import torch.nn as nn
import torchvision
from onnx import numpy_helper
from torchvision.models.densenet import DenseNet
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.models.googlenet import BasicConv2d, GoogLeNet, Inception
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.models.squeezenet import Fire, SqueezeNet
from torchvision.models.vgg import VGG, make_layers
from torchvision.models.alexnet import AlexNet

torch.set_num_threads(1)
warnings.filterwarnings("ignore")

GENERATOR = "tools/gen_onnx_corpus.py"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "fixtures", "onnx")
MAX_FILE = 1_000_000
N_SAMPLES = 3
NUM_CLASSES = 10
ORT_TOL = 1e-4
NORM_MEAN = np.array([0.485, 0.456, 0.406]).reshape(3, 1, 1)
NORM_STD = np.array([0.229, 0.224, 0.225]).reshape(3, 1, 1)
EXPORTERS = ["torchscript", "torchscript_static", "dynamo", "dynamo_external", "dynamo_dynamic"]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def tensor_json(a):
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    check(bool(np.all(np.isfinite(a))), "refusing to write a non-finite tensor")
    data = [float(v) for v in a.reshape(-1)]
    check(all(float(repr(v)) == v for v in data), "repr round trip")
    return {"shape": list(a.shape), "data": data}


def inputs_file(out_dir, key, x64):
    """Writes the float32 inputs (what onnxruntime was fed) to inputs/<key>.f32 (little-endian, C order) and returns
    the manifest's reference to them; the manifest stays small and every exporter of a family shares one file."""
    x32 = np.ascontiguousarray(np.asarray(x64, dtype=np.float64).astype("<f4"))
    check(bool(np.all(np.isfinite(x32))), "refusing to write a non-finite tensor")
    rel = f"inputs/{key}.f32"
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = x32.tobytes()
    if os.path.exists(path):
        with open(path, "rb") as f:
            check(f.read() == data, f"{rel}: differs from the inputs of another exporter")
    else:
        with open(path, "wb") as f:
            f.write(data)
    return {"file": rel, "shape": list(x32.shape), "dtype": "float32-le"}


def max_rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    check(a.shape == b.shape, f"shape {a.shape} != {b.shape}")
    return float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b))))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------

class SmallResNet(ResNet):
    """torchvision's ResNet.__init__ with the stage widths as a parameter (torchvision hard-codes 64/128/256/512);
    _make_layer and forward are torchvision's."""

    def __init__(self, widths=(8, 16, 32, 64), layers=(1, 1, 1, 1), num_classes=NUM_CLASSES):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def build_resnet():
    return SmallResNet()


def _small_vgg():
    model = VGG(make_layers([8, "M", 16, "M", 32, "M"], batch_norm=True), num_classes=NUM_CLASSES, init_weights=True)
    model.classifier = nn.Sequential(
        nn.Linear(32 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(p=0.5),
        nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(p=0.5),
        nn.Linear(32, NUM_CLASSES),
    )
    for m in model.classifier:
        if isinstance(m, nn.Linear):  # as VGG's init_weights
            nn.init.normal_(m.weight, 0, 0.01 * math.sqrt(4096 / m.in_features))
    return model


def build_mobilenet_v2():
    setting = [[1, 16, 1, 1], [6, 24, 1, 2], [6, 32, 2, 2], [6, 64, 1, 2]]
    return MobileNetV2(num_classes=NUM_CLASSES, width_mult=0.25, inverted_residual_setting=setting)


def build_mobilenet_v3():
    width = 0.5
    conf = lambda *a: InvertedResidualConfig(*a, width_mult=width)  # noqa: E731
    setting = [
        conf(16, 3, 16, 16, True, "RE", 2, 1),
        conf(16, 3, 72, 24, False, "RE", 2, 1),
        conf(24, 3, 88, 24, False, "RE", 1, 1),
        conf(24, 5, 96, 40, True, "HS", 2, 1),
        conf(40, 5, 240, 40, True, "HS", 1, 1),
    ]
    return MobileNetV3(setting, last_channel=128, num_classes=NUM_CLASSES)


def build_squeezenet():
    model = SqueezeNet("1_1", num_classes=NUM_CLASSES)
    d = 8
    model.features = nn.Sequential(
        nn.Conv2d(3, 64 // d, kernel_size=3, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(64 // d, 16 // d, 64 // d, 64 // d),
        Fire(128 // d, 16 // d, 64 // d, 64 // d),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(128 // d, 32 // d, 128 // d, 128 // d),
        Fire(256 // d, 32 // d, 128 // d, 128 // d),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        Fire(256 // d, 48 // d, 192 // d, 192 // d),
        Fire(384 // d, 48 // d, 192 // d, 192 // d),
        Fire(384 // d, 64 // d, 256 // d, 256 // d),
        Fire(512 // d, 64 // d, 256 // d, 256 // d),
    )
    model.classifier[1] = nn.Conv2d(512 // d, NUM_CLASSES, kernel_size=1)
    for m in model.modules():  # as torchvision, except the final conv (see the module docstring)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight)
    return model


def build_densenet():
    return DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=NUM_CLASSES)


def build_efficientnet():
    conf = lambda *a: MBConvConfig(*a, width_mult=0.25, depth_mult=1.0)  # noqa: E731
    setting = [conf(1, 3, 1, 32, 16, 1), conf(6, 3, 2, 16, 24, 2), conf(6, 5, 2, 24, 40, 1)]
    return EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=NUM_CLASSES, last_channel=64)


def build_shufflenet_v2():
    return ShuffleNetV2(stages_repeats=[2, 1, 1], stages_out_channels=[8, 16, 32, 64, 128], num_classes=NUM_CLASSES)


def build_googlenet():
    model = GoogLeNet(num_classes=NUM_CLASSES, aux_logits=False, transform_input=False, init_weights=True)
    model.conv1 = BasicConv2d(3, 8, kernel_size=7, stride=2, padding=3)
    model.conv2 = BasicConv2d(8, 8, kernel_size=1)
    model.conv3 = BasicConv2d(8, 24, kernel_size=3, padding=1)
    model.inception3a = Inception(24, 8, 12, 16, 2, 4, 4)      # -> 32
    model.inception3b = Inception(32, 16, 16, 24, 4, 12, 8)    # -> 60
    model.inception4a = Inception(60, 24, 12, 26, 2, 6, 8)     # -> 64
    for name in ["inception4b", "inception4c", "inception4d", "inception4e", "inception5b"]:
        setattr(model, name, nn.Identity())
    model.inception5a = Inception(64, 32, 20, 40, 4, 16, 16)   # -> 104
    model.fc = nn.Linear(104, NUM_CLASSES)
    for m in model.modules():  # as GoogLeNet's init_weights
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01 * 10, a=-0.2, b=0.2)
    return model


def build_alexnet():
    model = AlexNet(num_classes=NUM_CLASSES)
    model.features = nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(8, 16, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(16, 24, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(24, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(p=0.5), nn.Linear(16 * 6 * 6, 64), nn.ReLU(inplace=True),
        nn.Dropout(p=0.5), nn.Linear(64, 64), nn.ReLU(inplace=True),
        nn.Linear(64, NUM_CLASSES),
    )
    return model


# name -> (builder, per-sample input H = W, seed, notes)
FAMILIES = {
    "resnet": (build_resnet, 48, 101, "torchvision BasicBlock ResNet, widths 8/16/32/64, layers [1,1,1,1], real stem"),
    "vgg_bn": (_small_vgg, 56, 102, "torchvision VGG/make_layers([8,M,16,M,32,M], batch_norm=True); "
               "AdaptiveAvgPool2d((7,7)) on a 7x7 map"),
    "vgg_bn_cifar": (_small_vgg, 32, 103, "same VGG at 32x32: AdaptiveAvgPool2d((7,7)) upsamples 4x4 -> 7x7"),
    "mobilenet_v2": (build_mobilenet_v2, 48, 104, "torchvision MobileNetV2(width_mult=0.25), 4 setting rows"),
    "mobilenet_v3": (build_mobilenet_v3, 48, 105, "torchvision MobileNetV3, 5 rows of the small config, width 0.5"),
    "squeezenet": (build_squeezenet, 48, 106, "torchvision SqueezeNet 1_1 with Fire widths / 8"),
    "densenet": (build_densenet, 32, 107, "torchvision DenseNet(growth_rate=4, block_config=(2,2), "
                 "num_init_features=8, bn_size=2)"),
    "efficientnet": (build_efficientnet, 32, 108, "torchvision EfficientNet, 3 B0 stages, width_mult 0.25"),
    "shufflenet_v2": (build_shufflenet_v2, 48, 109, "torchvision ShuffleNetV2([2,1,1], [8,16,32,64,128])"),
    "googlenet": (build_googlenet, 48, 110, "torchvision GoogLeNet with small Inception 3a/3b/4a/5a, others Identity"),
    "alexnet": (build_alexnet, 64, 111, "torchvision AlexNet layout, widths 8/16/24/16/16; AdaptiveAvgPool2d((6,6)) "
                "upsamples 1x1 -> 6x6"),
}


def make_inputs(hw, gen, n):
    u = torch.rand(n, 3, hw, hw, generator=gen, dtype=torch.float64).numpy()
    x64 = np.round((u - NORM_MEAN) / NORM_STD, 2)
    x32 = x64.astype(np.float32)
    check(np.array_equal(x32.astype(np.float64).astype(np.float32), x32), "float32 round trip")
    return x64, x32


def randomize(model, hw, seed):
    """Non-trivial biases and batch-norm statistics (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        if isinstance(model, SqueezeNet):
            final = model.classifier[1]
            final.weight.copy_(torch.randn(final.weight.shape, generator=gen) * math.sqrt(2.0 / final.in_channels))
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batch
        _, calib = make_inputs(hw, gen, 16)
        torch.manual_seed(seed + 2000)  # dropout / stochastic depth during calibration
        model.train()
        model(torch.from_numpy(calib))
        model.eval()
        for bn in bns:
            bn.momentum = 0.1
            c = bn.num_features
            std = bn.running_var.sqrt()
            bn.running_mean.add_(torch.randn(c, generator=gen) * 0.3 * std)
            bn.running_var.mul_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(c, generator=gen) * 0.2)
            bn.num_batches_tracked.zero_()
    return model


# ----------------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress output (Python and C++ level)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def export(exporter, model, x1, x2, path):
    x1 = torch.from_numpy(x1)
    x2 = torch.from_numpy(x2)
    if exporter == "torchscript":
        torch.onnx.export(model, x1, path, dynamo=False, opset_version=13, do_constant_folding=True,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    elif exporter == "torchscript_static":
        torch.onnx.export(model, x1, path, dynamo=False, opset_version=11, do_constant_folding=True,
                          input_names=["input"], output_names=["logits"])
    elif exporter == "dynamo":
        torch.onnx.export(model, (x1,), path, dynamo=True, external_data=False, verbose=False)
    elif exporter == "dynamo_external":
        torch.onnx.export(model, (x1,), path, dynamo=True, verbose=False)
    elif exporter == "dynamo_dynamic":
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(model, (x2,), path, dynamo=True, external_data=False, verbose=False,
                          dynamic_shapes={"x": {0: batch}})
    else:
        raise ValueError(exporter)


def error_summary(e):
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    if len(first) > 300:
        first = first[:300] + "..."
    return f"{type(e).__name__}: {first}"


# ----------------------------------------------------------------------------------------------------------------
# Inspection
# ----------------------------------------------------------------------------------------------------------------

DTYPE_NAMES = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}


def _dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))  # PaddlePaddle writes -1 for a free dim
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append("?")
    return out


def _attr_value(a):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, onnx.TensorProto):
        return {"tensor": DTYPE_NAMES[v.data_type], "dims": list(v.dims)}
    if isinstance(v, (list, tuple)):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    if isinstance(v, float):
        return float(np.float32(v).item()) if math.isfinite(v) else str(v)
    return v


def _const_values(model):
    """name -> numpy value for initializers and Constant outputs (small ones only for the latter)."""
    vals = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if not t.external_data}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            vals[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return vals


def inspect_model(path):
    model = onnx.load(path, load_external_data=True)
    g = model.graph
    ops = collections.Counter(n.op_type for n in g.node)
    for fn in model.functions:
        for n in fn.node:
            ops[f"{fn.domain}.{fn.name}:{n.op_type}"] += 1
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    inits = list(g.initializer)
    init_names = {t.name for t in inits}
    init_dtypes = collections.Counter(DTYPE_NAMES[t.data_type] for t in inits)
    const_dtypes = collections.Counter()
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    const_dtypes[DTYPE_NAMES[a.t.data_type]] += 1
                else:
                    const_dtypes[a.name] += 1
    producers = {}
    for n in g.node:
        for o in n.output:
            producers[o] = n
    graph_inputs = {i.name for i in g.input}
    consts = _const_values(model)

    def computed(name):
        return name in producers and producers[name].op_type != "Constant" or name in graph_inputs

    attrs = collections.defaultdict(collections.Counter)
    patterns = collections.Counter()
    reshape_shapes = collections.Counter()
    gemm = collections.Counter()
    clip_forms = collections.Counter()
    for n in g.node:
        ad = {a.name: _attr_value(a) for a in n.attribute}
        if n.op_type != "Constant":
            attrs[n.op_type][json.dumps(ad, sort_keys=True)] += 1
        if n.op_type == "Identity" and n.input[0] in init_names:
            patterns["identity_on_initializer"] += 1
        if n.op_type in ("Mul", "Add", "Sub", "Div", "Concat", "Sum"):
            ins = [i for i in n.input if i]
            if len(ins) >= 2 and all(computed(i) for i in ins):
                patterns[f"{n.op_type.lower()}_of_computed_tensors"] += 1
            elif len(ins) >= 2:
                patterns[f"{n.op_type.lower()}_with_constant"] += 1
        if n.op_type == "Clip":
            if "min" in ad or "max" in ad:
                clip_forms["attributes"] += 1
            else:
                bounds = []
                for i in list(n.input[1:3]):
                    if not i:
                        bounds.append(None)
                    elif i in consts:
                        bounds.append(float(consts[i]))
                    else:
                        bounds.append("computed")
                clip_forms[f"inputs {bounds}"] += 1
        if n.op_type == "Reshape":
            s = n.input[1]
            if s in consts:
                reshape_shapes[str([int(v) for v in consts[s].reshape(-1)])] += 1
            else:
                reshape_shapes[f"computed by {producers[s].op_type if s in producers else 'input'}"] += 1
        if n.op_type == "Gemm":
            gemm[json.dumps({k: ad.get(k, d) for k, d in
                             [("alpha", 1.0), ("beta", 1.0), ("transA", 0), ("transB", 0)]}, sort_keys=True)] += 1
        if n.op_type in ("Conv", "MaxPool", "AveragePool", "Pad"):
            pads = ad.get("pads")
            if n.op_type != "Pad" and pads and pads[: len(pads) // 2] != pads[len(pads) // 2:]:
                patterns[f"{n.op_type.lower()}_asymmetric_pads"] += 1
            if ad.get("auto_pad", "NOTSET") != "NOTSET":
                patterns[f"{n.op_type.lower()}_auto_pad_{ad['auto_pad']}"] += 1
            if ad.get("ceil_mode", 0):
                patterns[f"{n.op_type.lower()}_ceil_mode"] += 1
        if any(i in producers and producers[i].op_type == "Shape" for i in n.input):
            patterns[f"reads_shape:{n.op_type}"] += 1
    if ops.get("Constant"):
        patterns["constant_nodes"] = ops["Constant"]
    shape_inference = "ok"
    try:
        onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:  # recorded, not asserted
        shape_inference = error_summary(e)
    return {
        "model": model,
        "ops": dict(sorted(ops.items())),
        "opset": opsets.get("ai.onnx"),
        "opset_imports": dict(sorted(opsets.items())),
        "ir_version": int(model.ir_version),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "input_name": g.input[0].name,
        "output_name": g.output[0].name,
        "input_dims": _dims(g.input[0]),
        "output_dims": _dims(g.output[0]),
        "n_graph_inputs": len([i for i in g.input if i.name not in init_names]),
        "initializers": {"count": len(inits), "dtypes": dict(sorted(init_dtypes.items()))},
        "float16": "float16" in init_dtypes or "float16" in const_dtypes,
        "float64": "double" in init_dtypes or "double" in const_dtypes,
        "shape_inference": shape_inference,
        "patterns": {
            **dict(sorted(patterns.items())),
            "constant_dtypes": dict(sorted(const_dtypes.items())),
            "clip": dict(sorted(clip_forms.items())),
            "reshape_shapes": dict(sorted(reshape_shapes.items())),
            "gemm": dict(sorted(gemm.items())),
            "functions": [f"{fn.domain}.{fn.name}" for fn in model.functions],
            "metadata_props": sorted({p.key for p in model.metadata_props}),
            "node_metadata_props": sorted({p.key for n in g.node for p in n.metadata_props}),
            "attrs": {op: dict(sorted(c.items())) for op, c in sorted(attrs.items())},
        },
    }


def run_ort(path, info, x32):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    batch = info["input_dims"][0]
    if isinstance(batch, int) and batch > 0:
        check(batch == 1, f"literal batch {batch}")
        outs = [sess.run(None, {name: x32[i:i + 1]})[0] for i in range(x32.shape[0])]
        out = np.concatenate(outs, 0)
    else:
        out = sess.run(None, {name: x32})[0]
    check(out.dtype == np.float32, f"output dtype {out.dtype}")
    return out


# ----------------------------------------------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------------------------------------------

def generate_family(family, out_dir, tmp):
    builder, hw, seed, notes = FAMILIES[family]
    torch.manual_seed(seed)
    model = builder()
    randomize(model, hw, seed)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x64, x32 = make_inputs(hw, gen, N_SAMPLES)
    with torch.no_grad():
        ref = model(torch.from_numpy(x32)).numpy()
    check(ref.shape == (N_SAMPLES, NUM_CLASSES), f"{family}: logits shape {ref.shape}")
    check(bool(np.all(np.isfinite(ref))), f"{family}: non-finite logits")
    scale = float(np.max(np.abs(ref)))
    check(1e-2 < scale < 1e3, f"{family}: logit scale {scale}")
    spread = max(float(np.max(np.abs(ref[i] - ref[j]))) for i in range(N_SAMPLES) for j in range(i))
    check(spread > 1e-3 * scale, f"{family}: the samples' logits do not differ ({spread} vs {scale})")
    params = sum(p.numel() for p in model.parameters())
    print(f"{family}: {params} parameters, input 3x{hw}x{hw}, logit scale {scale:.3g}")

    entries = []
    for exporter in EXPORTERS:
        name = f"{family}_{exporter}"
        entry = {"name": name, "family": family, "exporter": exporter}
        fname = f"{name}.onnx"
        tdir = os.path.join(tmp, name)
        os.makedirs(tdir)
        tpath = os.path.join(tdir, fname)
        m = copy.deepcopy(model).eval()
        try:
            with quiet():
                export(exporter, m, x32[:1], x32[:2], tpath)
        except Exception as e:
            entry.update({"file": None, "error": error_summary(e), "input_shape": [3, hw, hw],
                          "notes": notes + "; export failed"})
            print(f"  {exporter:18s} FAILED {entry['error'][:150]}")
            entries.append(entry)
            continue
        produced = sorted(os.listdir(tdir))
        check(produced[0] == fname, f"{name}: produced {produced}")
        extra = produced[1:]
        for f in produced:
            size = os.path.getsize(os.path.join(tdir, f))
            check(size <= MAX_FILE, f"{name}: {f} has {size} bytes > {MAX_FILE}")
            shutil.copyfile(os.path.join(tdir, f), os.path.join(out_dir, "exported", f))
        path = os.path.join(out_dir, "exported", fname)
        checker = "ok"
        try:
            onnx.checker.check_model(path, full_check=True)
        except Exception as e:
            checker = error_summary(e)
        check(checker == "ok", f"{name}: checker: {checker}")
        info = inspect_model(path)
        info.pop("model")
        ext = sorted({e.value for t in onnx.load(path, load_external_data=False).graph.initializer
                      for e in t.external_data if e.key == "location"})
        check(ext == extra, f"{name}: external data {ext} vs files {extra}")
        logits = run_ort(path, info, x32)
        err = max_rel(logits, ref)
        check(err <= ORT_TOL, f"{name}: onnxruntime vs torch {err:.2e}")
        batch = info["input_dims"][0]
        entry.update({
            "file": f"exported/{fname}",
            "external_data": [f"exported/{f}" for f in extra],
            "input_name": info.pop("input_name"),
            "output_name": info.pop("output_name"),
            "input_shape": [3, hw, hw],
            "batch": batch if isinstance(batch, int) and batch > 0 else "symbolic",
            **info,
            "file_bytes": os.path.getsize(path),
            "data_bytes": sum(os.path.getsize(os.path.join(out_dir, "exported", f)) for f in extra),
            "sha256": {f: sha256(os.path.join(out_dir, "exported", f)) for f in produced},
            "checker": checker,
            "inputs": inputs_file(out_dir, family, x64),
            "logits": tensor_json(logits),
            "torch_max_rel": err,
            "notes": notes + ("; literal batch 1: logits computed sample by sample" if isinstance(batch, int) else ""),
        })
        print(f"  {exporter:18s} ok  opset {entry['opset']:2d}  {entry['file_bytes'] + entry['data_bytes']:7d} B  "
              f"ort-vs-torch {err:.1e}  {len(entry['ops'])} op types")
        entries.append(entry)
    ok = [e for e in entries if e.get("file")]
    for e in ok[1:]:
        d = max_rel(e["logits"]["data"], ok[0]["logits"]["data"])
        check(d <= ORT_TOL, f"{e['name']} vs {ok[0]['name']}: {d:.2e}")
    return entries


# ----------------------------------------------------------------------------------------------------------------
# Real models: published files copied unmodified into real/ (provenance and licences: NOTICE)
# ----------------------------------------------------------------------------------------------------------------

DIGITS = os.path.join(HERE, "..", "data", "digits_test.bin")

# input: {"kind": "uniform", "range": [lo, hi]} (u ~ U(lo, hi), rounded to 2 decimals) or {"kind": "digits",
# "labels": [...], "scale": s} (the first test digit of each label from data/digits_test.bin, pixels u8 * s)
REAL_MODELS = [
    {
        "name": "real_wml_cifar10_classifier", "file": "real/wml_ImageClassifier.onnx",
        "sha256": "d04131695f980c7febadf5e64996500dc4c9a6b1c313a30262d1a78386fc076d",
        "exporter": "pytorch 1.7 (torch.onnx.export, TorchScript exporter), opset 10",
        "input_shape": [3, 32, 32], "input": {"kind": "uniform", "range": [-1.0, 1.0]}, "seed": 201,
        "source": {"repository": "github.com/microsoft/Windows-Machine-Learning",
                   "path": "Samples/Tutorial Samples/PyTorch Image Classification/PyTorchTraining - Image "
                           "Classification/ImageClassifier.onnx",
                   "commit": "155b5eeb1f48b49235f31ef3a68db0bd8707ce89 (file added in 3f0d5b60c8f6)"},
        "licence": "MIT", "copyright": "Copyright (c) Microsoft Corporation. All rights reserved.",
        "notes": "CIFAR-10 classifier trained in the Windows ML PyTorch tutorial (4 conv+BN+ReLU, max-pool, linear; "
                 "BN folded into the convs by the exporter); input = image in [0, 1] normalised with mean 0.5, "
                 "std 0.5, i.e. [-1, 1]; output: 10 logits",
    },
    {
        "name": "real_wml_mnist_cntk", "file": "real/wml_mnist.onnx",
        "sha256": "bd5891fdd7987910bfc3d8fc9a697a88e48309e26e529faa87931fba52904fe8",
        "exporter": "CNTK 2.5.1, opset 7",
        "input_shape": [1, 28, 28], "input": {"kind": "digits", "labels": [7, 2, 1], "scale": 1.0}, "seed": 202,
        "source": {"repository": "github.com/microsoft/Windows-Machine-Learning",
                   "path": "SharedContent/models/mnist.onnx (identical: Samples/MNIST/UWP/cs/Assets/mnist.onnx)",
                   "commit": "155b5eeb1f48b49235f31ef3a68db0bd8707ce89 (file added in 4648837d0b6b)"},
        "licence": "MIT", "copyright": "Copyright (c) Microsoft Corporation. All rights reserved.",
        "notes": "the ONNX Model Zoo's CNTK MNIST CNN (CNTK 103D tutorial: conv5x5/ReLU/maxpool x2, dense) with Windows "
                 "ML image metadata (Gray8, NominalRange_0_255); input = pixels in [0, 255] (here real test digits "
                 "of the crate's data/digits_test.bin, labels 7, 2, 1); output: 10 scores",
    },
    {
        "name": "real_dianna_binary_mnist", "file": "real/dianna_mnist_model.onnx",
        "sha256": "8cc46d73a607f8cab0ba5cae30708f496c8316571bdb5dac93ac5bff1c452aff",
        "exporter": "pytorch 1.8 (torch.onnx.export, TorchScript exporter, dynamic batch), opset 11",
        "input_shape": [1, 28, 28], "input": {"kind": "digits", "labels": [0, 1, 0], "scale": 1.0}, "seed": 203,
        "source": {"repository": "github.com/dianna-ai/dianna",
                   "path": "tests/test_data/mnist_model.onnx (also Zenodo doi:10.5281/zenodo.5907176)",
                   "commit": "02b628ba43d10025e6961f13f5d98a6efddf6beb (file added in 48235806d45a)"},
        "licence": "Apache-2.0",
        "copyright": "Copyright 2022, Netherlands eScience Center (DIANNA's docs/conf.py; its LICENSE is the plain "
                     "Apache-2.0 text without a filled-in copyright line)",
        "notes": "DIANNA's binary MNIST classifier (digits 0 vs 1; conv/ReLU/maxpool x2, 2 dense, LogSoftmax), the "
                 "test model of an explainable-AI library; input = pixels in [0, 255] (DIANNA feeds uint8 "
                 "binary-mnist data cast to float; here real digits labelled 0, 1, and the second 0); output: 2 "
                 "log-probabilities",
    },
    {
        "name": "real_ppocr_text_direction_cls", "file": "real/rapidocr_ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "sha256": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "exporter": "PaddlePaddle (paddle2onnx; producer_name 'PaddlePaddle', no version), opset 11",
        "input_shape": [3, 48, 192], "input": {"kind": "uniform", "range": [-1.0, 1.0]}, "seed": 204,
        "source": {"repository": "PyPI rapidocr_onnxruntime 1.4.4 (github.com/RapidAI/RapidOCR); model from "
                                 "github.com/PaddlePaddle/PaddleOCR (ch_ppocr_mobile_v2.0_cls)",
                   "path": "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                   "commit": "wheel rapidocr_onnxruntime-1.4.4-py3-none-any.whl"},
        "licence": "Apache-2.0",
        "copyright": "Copyright (c) 2016 PaddlePaddle Authors. All Rights Reserved; "
                     "Copyright (c) 2021 RapidOCR Authors. All rights reserved.",
        "notes": "PaddleOCR's text-direction classifier (0 / 180 degrees; MobileNetV3-small-like, scale 0.35: "
                 "hard-swish as x*relu6(x+3)/6 with Clip/Div, SE gates with HardSigmoid, BN not folded, weights as "
                 "Constant nodes, MatMul+Add head, Softmax); input = RGB text-line crop resized to 48x192, "
                 "(x/255 - 0.5)/0.5, i.e. [-1, 1]; input dims declared as [-1, 3, ?, ?]; output: 2 probabilities",
    },
]


def load_digits():
    with open(DIGITS, "rb") as f:
        raw = f.read()
    check(raw[:8] == b"RLVDIGIT", "digits magic")
    version, n, rows, cols = np.frombuffer(raw[8:24], dtype="<u4")
    check(version == 1 and len(raw) == 24 + n * rows * cols + n, "digits layout")
    pixels = np.frombuffer(raw[24:24 + n * rows * cols], dtype=np.uint8).reshape(n, rows, cols)
    labels = np.frombuffer(raw[24 + n * rows * cols:], dtype=np.uint8)
    return pixels, labels


def real_inputs(spec):
    inp = spec["input"]
    if inp["kind"] == "uniform":
        gen = torch.Generator().manual_seed(spec["seed"])
        lo, hi = inp["range"]
        u = torch.rand(N_SAMPLES, *spec["input_shape"], generator=gen, dtype=torch.float64).numpy()
        x64 = np.round(lo + (hi - lo) * u, 2)
    else:
        pixels, labels = load_digits()
        picked = []
        for lab in inp["labels"]:
            idx = [int(i) for i in np.nonzero(labels == lab)[0] if int(i) not in picked]
            picked.append(idx[0])
        x64 = pixels[picked].astype(np.float64).reshape(N_SAMPLES, *spec["input_shape"]) * inp["scale"]
    x32 = x64.astype(np.float32)
    check(np.array_equal(x64.astype(np.float32), x32), "float32 round trip")
    return x64, x32


def generate_real(out_dir):
    entries = []
    for spec in REAL_MODELS:
        path = os.path.join(out_dir, spec["file"])
        size = os.path.getsize(path)
        check(size <= 2_000_000, f"{spec['name']}: {size} bytes")
        check(sha256(path) == spec["sha256"], f"{spec['name']}: sha256 differs from the published file")
        checker = "ok"
        try:
            onnx.checker.check_model(path, full_check=True)
        except Exception as e:  # recorded: published files need not pass the current checker
            checker = error_summary(e)
        info = inspect_model(path)
        info.pop("model")
        x64, x32 = real_inputs(spec)
        logits = run_ort(path, info, x32)
        check(bool(np.all(np.isfinite(logits))), f"{spec['name']}: non-finite output")
        batch = info["input_dims"][0]
        literal = isinstance(batch, int) and batch > 0
        entry = {
            "name": spec["name"], "family": "real", "exporter": spec["exporter"], "file": spec["file"],
            "external_data": [],
            "input_name": info.pop("input_name"), "output_name": info.pop("output_name"),
            "input_shape": spec["input_shape"],
            "batch": batch if literal else "symbolic",
            **info,
            "file_bytes": size, "data_bytes": 0, "sha256": {os.path.basename(path): spec["sha256"]},
            "checker": checker,
            "inputs": inputs_file(out_dir, spec["name"], x64),
            "logits": tensor_json(logits),
            "source": spec["source"], "licence": spec["licence"], "copyright": spec["copyright"],
            "notes": spec["notes"] + ("; literal batch 1: outputs computed sample by sample" if literal else ""),
        }
        print(f"real {spec['name']}: {size} B, opset {entry['opset']}, checker {checker}, output "
              f"{list(logits.shape)}, argmax {logits.argmax(1).tolist()}")
        entries.append(entry)
    return entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: tests/fixtures/onnx)")
    ap.add_argument("--only", nargs="*", default=None, help=f"subset of families ({' '.join(FAMILIES)})")
    ap.add_argument("--skip-real", action="store_true", help="no entries for the models in real/")
    args = ap.parse_args()
    versions = {
        "torch": torch.__version__, "torchvision": torchvision.__version__, "onnx": onnx.__version__,
        "onnxruntime": ort.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
    }
    try:
        import onnxscript
        versions["onnxscript"] = onnxscript.__version__
    except ImportError:
        pass
    print(" ".join(f"{k} {v}" for k, v in versions.items()))
    out_dir = os.path.normpath(args.out)
    exp_dir = os.path.join(out_dir, "exported")
    os.makedirs(exp_dir, exist_ok=True)
    families = [f for f in FAMILIES if not args.only or f in args.only]
    for f in os.listdir(exp_dir):  # stale files of the families being regenerated
        if any(f.startswith(fam + "_") and f[len(fam) + 1:].split(".")[0] in EXPORTERS for fam in families):
            os.remove(os.path.join(exp_dir, f))
    stale = families + ([] if args.skip_real else [spec["name"] for spec in REAL_MODELS])
    for key in stale:
        path = os.path.join(out_dir, "inputs", f"{key}.f32")
        if os.path.exists(path):
            os.remove(path)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            entries += generate_family(family, out_dir, tmp)
    if not args.skip_real:
        entries += generate_real(out_dir)
    manifest = {"generator": GENERATOR, "versions": versions, "entries": entries}
    text = json.dumps(manifest, separators=(",", ":"), allow_nan=False)
    path = os.path.join(out_dir, "manifest.json")
    with open(path, "w") as f:
        f.write(text + "\n")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out_dir) for f in fs)
    n_ok = sum(1 for e in entries if e.get("file"))
    print(f"wrote {path} ({len(text) / 1e6:.2f} MB): {len(entries)} entries, {n_ok} files, "
          f"{len(entries) - n_ok} export failures; {out_dir} holds {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
