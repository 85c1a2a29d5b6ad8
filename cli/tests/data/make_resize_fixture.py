"""Makes the resize fixture of cli/src/input.rs: a synthetic 64x48 RGB photo-like image and what
torchvision's Resize(37) + CenterCrop(32) give on it (PIL bilinear with antialiasing; torchvision's
crop offsets round half to even). 37 = round(32 * 256 / 224), the CLI's ImageNet recipe for a
32x32 model. Needs Pillow and NumPy:  python3 cli/tests/data/make_resize_fixture.py
"""
import math
import os

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
h, w = 48, 64
y, x = np.mgrid[0:h, 0:w].astype(np.float64)
rgb = np.stack([
    127 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0),  # smooth waves
    255 * ((x // 6 + y // 6) % 2),                  # a checkerboard: sharp edges
    255 * x / (w - 1) * (y > h / 3),                # a ramp with a step
], axis=-1)
rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
src = Image.fromarray(rgb, "RGB")
src.save(os.path.join(here, "resize_src.png"))

# torchvision.transforms.Resize(37): shorter side 37, longer int(37 * long / short)
size = 37
short, long = min(w, h), max(w, h)
new_short, new_long = size, int(size * long / short)
new_w, new_h = (new_long, new_short) if w >= h else (new_short, new_long)
resized = src.resize((new_w, new_h), Image.BILINEAR)
# torchvision.transforms.CenterCrop(32)
crop = 32
top = int(round((new_h - crop) / 2.0))
left = int(round((new_w - crop) / 2.0))
resized.crop((left, top, left + crop, top + crop)).save(os.path.join(here, "resize_expected.png"))
print(new_w, new_h, top, left)
