#!/usr/bin/env python3
"""Generate the dinucleotide-shuffle fixture from the REAL tangermeme 1.6.0 (and bpnet-lite 1.1.0 for the end-to-end
DeepLIFT-SHAP case).

How to run (from the repository root):

    ~/venv/bin/pip install torch tangermeme==1.6.0 bpnet-lite==1.1.0 numpy
    ~/venv/bin/python tools/gen_shuffle_fixtures.py            # writes tests/fixtures/dinucleotide_shuffle.json
    ~/venv/bin/python tools/gen_shuffle_fixtures.py --out DIR  # write somewhere else

Shuffle cases: `tangermeme.ersatz.dinucleotide_shuffle(X, n=n, random_state=seed, allow_N=True)` on small one-hot
batches (random letters from numpy's default_rng(1), some with unknown letters, all-zero columns, code 4), for several
seeds (0, 7, a negative one and one beyond 32 bits, which tangermeme wraps; a batch that tangermeme refuses because
some sequence's shuffles are all identical is left out), and the single shuffles with seeds
`seed + k` that `deep_lift_shap` draws as its references (`dinucleotide_shuffle(X, n=1, random_state=[seed + k] * N)`).

End-to-end case: `tangermeme.deep_lift_shap(CountWrapper(BPNet), X, n_shuffles=4, random_state=3, target=0,
hypothetical=True, return_references=True)` in float64 on the small BPNet of tools/gen_bpnet_fixtures.py (same
construction, torch seed 0; its ONNX export tests/fixtures/onnx/sequence/bpnet_counts.onnx holds the same weights) on
the two sequences of that fixture.

JSON: generator, versions, cases: [{x [N][L] codes (0-3 = ACGT, 4 = N), n, seed, shuffles [N][n][L] codes}],
references: [{x, n_shuffles, seed, references [N][n][L]}], bpnet: {x [N][L], n_shuffles, seed, references [N][R][L],
hypothetical {"shape", "data"} [N, 4, L]}.
"""
import argparse
import json
import os

import numpy as np
import torch

torch.set_num_threads(1)


def one_hot(codes):
    codes = np.asarray(codes)
    x = np.zeros((codes.shape[0], 4, codes.shape[1]))
    for s in range(codes.shape[0]):
        for i, c in enumerate(codes[s]):
            if c < 4:
                x[s, c, i] = 1.0
    return torch.tensor(x)


def codes_of(t):
    t = t.numpy()
    c = t.argmax(axis=-2)
    c[t.sum(axis=-2) == 0] = 4
    return c.tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = args.out or os.path.join(root, "tests", "fixtures")

    import bpnetlite
    import tangermeme
    from bpnetlite.bpnet import BPNet, CountWrapper
    from tangermeme.deep_lift_shap import deep_lift_shap
    from tangermeme.ersatz import dinucleotide_shuffle

    rng = np.random.default_rng(1)
    batches = []
    batches.append(rng.integers(0, 4, size=(3, 20)))
    batches.append(rng.integers(0, 4, size=(2, 40)))
    with_n = rng.integers(0, 4, size=(2, 30))
    with_n[0, 5:8] = 4
    with_n[1, 0] = 4
    with_n[1, 17] = 4
    batches.append(with_n)
    batches.append(rng.integers(0, 4, size=(1, 300)))

    cases = []
    for b, codes in enumerate(batches):
        for seed, n in [(0, 5), (7, 3), (-3, 2), (2**32 + 11, 2)]:
            if b == 3 and seed != 0:
                continue
            try:
                shuf = dinucleotide_shuffle(one_hot(codes), n=n, random_state=seed, allow_N=True)
            except ValueError:  # tangermeme refuses a batch where some sequence's shuffles are all identical
                continue
            cases.append({"x": codes.tolist(), "n": n, "seed": seed, "shuffles": codes_of(shuf)})

    references = []
    for codes, seed, r in [(batches[0], 0, 4), (batches[2], 5, 3)]:
        x = one_hot(codes)
        refs = torch.stack([dinucleotide_shuffle(x, n=1, random_state=[seed + k] * len(codes), allow_N=True)[:, 0]
                            for k in range(r)], dim=1)
        references.append({"x": codes.tolist(), "n_shuffles": r, "seed": seed, "references": codes_of(refs)})

    torch.manual_seed(0)
    bpnet = BPNet(n_filters=8, n_layers=3, n_outputs=2, n_control_tracks=0, trimming=40, verbose=False).eval()
    m64 = CountWrapper(bpnet.double()).eval()
    brng = np.random.default_rng(0)
    bases = brng.integers(0, 4, size=(2, 100))
    X = one_hot(bases)
    r, seed = 4, 3
    hyp, refs = deep_lift_shap(m64, X, n_shuffles=r, random_state=seed, target=0, hypothetical=True,
                               return_references=True, device="cpu")
    hyp = hyp.numpy()
    fx = {
        "generator": "tools/gen_shuffle_fixtures.py",
        "torch_version": torch.__version__,
        "tangermeme_version": tangermeme.__version__,
        "bpnetlite_version": bpnetlite.__version__,
        "cases": cases,
        "references": references,
        "bpnet": {"x": bases.tolist(), "n_shuffles": r, "seed": seed, "references": codes_of(refs),
                  "hypothetical": {"shape": list(hyp.shape), "data": [float(v) for v in hyp.reshape(-1)]}},
    }
    path = os.path.join(out, "dinucleotide_shuffle.json")
    with open(path, "w") as f:
        json.dump(fx, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", path, len(cases), "shuffle cases")


if __name__ == "__main__":
    main()
