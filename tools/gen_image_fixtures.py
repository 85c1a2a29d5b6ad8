#!/usr/bin/env python3
"""Image-loading fixtures for relevance::image (tests/suite/images.rs): what torchvision's
evaluation transform gives on the same files.

Writes tests/fixtures/images/:
  photo.png          a synthetic 64x48 RGB image (smooth waves, a checkerboard, a ramp with a step)
  photo.jpg          the same, JPEG quality 90 (4:2:0 chroma subsampling, PIL's default)
  expected.json      per case: the file, the model input [C, H, W], the resize ratio, and
                     torchvision's ToTensor() output (before normalisation) times 255 (exact
                     integers) as a flat list

Also cli/tests/data/seven_56x70.jpg: the first test digit 7 of data/digits_test.bin at twice the
size (nearest neighbour) with 7 black rows above and below, slightly tinted (blue at 90 %), JPEG
quality 90: the CLI test of resizing a JPEG of another size.

Cases (all through torchvision.transforms on PIL images, as a PyTorch user's eval pipeline):
  rgb_imagenet_32   Resize(round(32 * 256/224) = 37) + CenterCrop(32), RGB (photo.png)
  grey_mnist_28     convert("L") + Resize(28) + CenterCrop(28) (photo.png)
  rgb_odd_crop      Resize(round(21 * 256/224) = 24) + CenterCrop((21, 17)), RGB: odd crop margins
  jpeg_rgb_32       as rgb_imagenet_32 on photo.jpg (decoders differ: checked to a looser bound)
  square_imagenet   square.png (the photo's top-left 32x32) for a 32x32 input with the ImageNet
                    ratio: an image of the input's size is still resized (to 37) and cropped

    ~/venv/bin/pip install torch torchvision pillow numpy
    ~/venv/bin/python tools/gen_image_fixtures.py
"""
import json
import os

import numpy as np
import torchvision
from PIL import Image
from torchvision import transforms as T

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "images")


def photo():
    h, w = 48, 64
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([
        127 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0),
        255 * ((x // 6 + y // 6) % 2),
        255 * x / (w - 1) * (y > h / 3),
    ], axis=-1)
    return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), "RGB")


def case(name, file, shape, ratio):
    img = Image.open(os.path.join(OUT, file))
    c, h, w = shape
    img = img.convert("L" if c == 1 else "RGB")
    side = int(round(max(h, w) * ratio))
    t = T.Compose([T.Resize(side), T.CenterCrop((h, w)), T.ToTensor()])
    x = t(img).double().numpy()
    assert list(x.shape) == shape, (name, x.shape)
    return {"name": name, "file": file, "shape": shape, "resize_ratio": ratio,
            "original": list(Image.open(os.path.join(OUT, file)).size),
            # ToTensor of an 8-bit PIL image is exactly k / 255: stored as k
            "expected_u8": [int(round(v * 255)) for v in x.reshape(-1)]}


def seven_jpeg():
    raw = open(os.path.join(ROOT, "data", "digits_test.bin"), "rb").read()
    assert raw[:8] == b"RLVDIGIT"
    _, n, rows, cols = np.frombuffer(raw[8:24], dtype="<u4")
    pixels = np.frombuffer(raw[24:24 + n * rows * cols], dtype=np.uint8).reshape(n, rows, cols)
    labels = np.frombuffer(raw[24 + n * rows * cols:], dtype=np.uint8)
    digit = pixels[int(np.argmax(labels == 7))]
    big = np.zeros((70, 56), dtype=np.uint8)
    big[7:63] = digit.repeat(2, axis=0).repeat(2, axis=1)
    rgb = np.stack([big, big, (big.astype(np.float64) * 0.9).astype(np.uint8)], axis=-1)
    Image.fromarray(rgb, "RGB").save(os.path.join(ROOT, "cli", "tests", "data", "seven_56x70.jpg"), quality=90)


def main():
    os.makedirs(OUT, exist_ok=True)
    src = photo()
    src.save(os.path.join(OUT, "photo.png"))
    src.save(os.path.join(OUT, "photo.jpg"), quality=90)
    src.crop((0, 0, 32, 32)).save(os.path.join(OUT, "square.png"))
    cases = [
        case("rgb_imagenet_32", "photo.png", [3, 32, 32], 256 / 224),
        case("grey_mnist_28", "photo.png", [1, 28, 28], 1.0),
        case("rgb_odd_crop", "photo.png", [3, 21, 17], 256 / 224),
        case("jpeg_rgb_32", "photo.jpg", [3, 32, 32], 256 / 224),
        case("square_imagenet", "square.png", [3, 32, 32], 256 / 224),
    ]
    seven_jpeg()
    meta = {"torchvision": torchvision.__version__, "pillow": Image.__version__, "cases": cases}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f)
    print("wrote", len(cases), "cases to", OUT)


if __name__ == "__main__":
    main()
