#!/usr/bin/env python3
"""Dump the reference colour palettes and normalisation samples to tests/fixtures/palettes.json.

The Rust `heatmap` module computes its palettes from formulas (zennit's colour-map source language and
matplotlib's segment data); `tests/suite/heatmap.rs` compares them byte by byte with what this script writes from the
real libraries.

How to run (from the repository root):

    python3 -m venv ~/venv && ~/venv/bin/pip install zennit matplotlib numpy
    ~/venv/bin/python tools/gen_palettes.py                  # writes tests/fixtures/palettes.json
    ~/venv/bin/python tools/gen_palettes.py --out FILE       # write somewhere else

What it writes (deterministic; re-running with the same versions gives a byte-identical file):

* `zennit`: `zennit.image.palette(name)` (256 x RGB, uint8) for every built-in zennit colour map (bwr, coldnhot,
  gray, seismic, ... -- zennit's own "seismic" is a 0xd0-bright blue-white-red, NOT matplotlib's), together with
  the colour-map source (`zennit.image.CMAPS._sources`);
* `zennit_level`: a few palettes with `level != 1` (bwr and coldnhot at 0.5 and 2.0);
* `matplotlib`: `matplotlib.colormaps[name](np.arange(256), bytes=True)[:, :3]` for "seismic", "bwr" and "gray"
  (if matplotlib is importable);
* `symmetric`: a float32 relevance map and the palette indices that `zennit.image.imgify(x, symmetric=True)` gives
  it (the P-mode image's pixel values), i.e. `uint8(clip(255 (x - vmin) / (vmax - vmin), 0, 255))` with
  vmax = max|x|, vmin = -vmax -- truncation, so 0 maps to 127;
* `captum_threshold`: a float64 array and captum's `_cumulative_sum_threshold(|x|, 98)` (outlier_perc = 2), if
  captum is importable.
"""
import argparse
import json
import os

import numpy as np
from importlib.metadata import version as dist_version
from zennit.image import CMAPS, imgify, palette


def _patch_pillow():
    '''zennit 0.5.1 passes a (256, 3) numpy array to PIL's putpalette, which Pillow >= 11 no longer accepts as
    palette data; flatten it to bytes first (the palette itself is unchanged).'''
    from PIL import Image
    original = Image.Image.putpalette
    if getattr(original, '_flattening', False):
        return

    def putpalette(self, data, rawmode='RGB'):
        if isinstance(data, np.ndarray):
            data = np.ascontiguousarray(data, dtype=np.uint8).tobytes()
        return original(self, data, rawmode)

    putpalette._flattening = True
    Image.Image.putpalette = putpalette


def rows(arr):
    return [[int(v) for v in row] for row in np.asarray(arr, dtype=np.uint8)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'palettes.json')
    parser.add_argument('--out', default=default)
    args = parser.parse_args()

    out = {'generator': 'tools/gen_palettes.py', 'zennit_version': dist_version('zennit')}

    out['zennit'] = {
        name: {'source': CMAPS._sources[name], 'palette': rows(palette(name))} for name in sorted(CMAPS)
    }
    out['zennit_level'] = [
        {'name': name, 'level': level, 'palette': rows(palette(name, level=level))}
        for name in ('bwr', 'coldnhot') for level in (0.5, 2.0)
    ]

    try:
        import matplotlib
        out['matplotlib_version'] = matplotlib.__version__
        out['matplotlib'] = {
            name: rows(matplotlib.colormaps[name](np.arange(256), bytes=True)[:, :3])
            for name in ('seismic', 'bwr', 'gray')
        }
    except ImportError:
        pass

    # A deterministic float32 map with values of both signs, exact zeros, and the extremes +-max.
    h, w = 9, 11
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    x = (np.sin(0.7 * ii + 0.3) * np.cos(0.5 * jj - 0.2) * 3.0).astype(np.float32)
    x[0, 0] = 0.0
    x[4, 5] = 0.0
    x[8, 10] = -np.abs(x).max()
    _patch_pillow()
    img = imgify(x, symmetric=True, cmap='bwr')
    assert img.mode == 'P'
    idx = np.array(img)
    assert idx[0, 0] == 127 and idx[8, 10] == 0
    assert np.array_equal(np.array(img.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256], palette('bwr'))
    out['symmetric'] = {
        'shape': [h, w],
        'data': [float(v) for v in x.flatten()],
        'indices': [int(v) for v in idx.flatten()],
    }

    try:
        import captum
        from captum.attr._utils.visualization import _cumulative_sum_threshold
        y = np.cos(1.3 * ii * jj + 0.1 * ii) * (1.0 + jj) - 0.25 * ii
        out['captum_version'] = dist_version('captum')
        out['captum_threshold'] = {
            'shape': [h, w],
            'data': [float(v) for v in y.flatten()],
            'outlier_perc': 2.0,
            'threshold': float(_cumulative_sum_threshold(np.abs(y), 100.0 - 2.0)),
        }
    except ImportError:
        pass

    with open(args.out, 'w') as f:
        json.dump(out, f, indent=None, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {os.path.normpath(args.out)}')


if __name__ == '__main__':
    main()
