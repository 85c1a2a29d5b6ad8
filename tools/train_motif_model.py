#!/usr/bin/env python3
"""Train the small BPNet-style sequence model bundled with `relevance` and write its files.

The task is synthetic, so that the right explanation is known: 200 bp random DNA
(uniform letters) in which copies of two motifs are planted at random positions, the AP-1
site TGACTCA and the GATA site AGATAA; the target is log(1 + 2·#AP-1 + #GATA) (a count
head, as BPNet's). A model that learned the task must attribute the planted sites, AP-1 more
than GATA, and little elsewhere: the README's sequence logo shows it.

The network is bpnet-lite's BPNet count path at a small size, written out here (bpnet-lite's
BPNet adds a profile head that this task has no data for): Conv1d(4, 32, 21, padding 10),
then 4 residual blocks x + Conv1d(32, 32, 3, dilation 2^i, padding 2^i)(relu(x)), a ReLU,
the mean over the length and Linear(32, 1). Seeds fixed, 2 threads, CPU; about a minute.

    ~/venv/bin/python tools/train_motif_model.py

Writes (relative to the repository root):

* models/motifs.onnx   torch.onnx.export (TorchScript exporter, opset 17) of the trained model,
                       input "sequence" [N, 4, 200] one-hot in ACGT order, output "log_count" [N, 1]
* data/motifs.fa       20 held-out test sequences (FASTA) with their planted sites in the
                       record names, e.g. ">test3 AP-1@57 GATA@120"
"""
import argparse
import os
import random

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENGTH = 200
MOTIFS = {"AP-1": "TGACTCA", "GATA": "AGATAA"}
WEIGHT = {"AP-1": 2.0, "GATA": 1.0}


class SmallBPNet(nn.Module):
    def __init__(self, filters=32, layers=4):
        super().__init__()
        self.iconv = nn.Conv1d(4, filters, 21, padding=10)
        self.rconvs = nn.ModuleList(
            nn.Conv1d(filters, filters, 3, padding=2 ** i, dilation=2 ** i) for i in range(1, layers + 1))
        self.linear = nn.Linear(filters, 1)

    def forward(self, x):
        x = self.iconv(x)
        for conv in self.rconvs:
            x = x + conv(torch.relu(x))
        x = torch.relu(x)
        return self.linear(x.mean(dim=2))


def sample(rng):
    seq = [rng.choice("ACGT") for _ in range(LENGTH)]
    sites = []
    for name, motif in MOTIFS.items():
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            for _attempt in range(20):
                p = rng.randrange(0, LENGTH - len(motif))
                if all(abs(p - q) > 10 for _, q in sites):
                    seq[p:p + len(motif)] = motif
                    sites.append((name, p))
                    break
    text = "".join(seq)
    # the count as the sequence reads (a random background can hold a site too)
    count = sum(WEIGHT[n] * sum(text.startswith(m, i) for i in range(LENGTH)) for n, m in MOTIFS.items())
    return text, sorted(sites, key=lambda s: s[1]), np.log1p(count)


def one_hot(texts):
    idx = {c: i for i, c in enumerate("ACGT")}
    x = np.zeros((len(texts), 4, LENGTH), dtype=np.float32)
    for s, t in enumerate(texts):
        for p, c in enumerate(t):
            x[s, idx[c], p] = 1.0
    return torch.from_numpy(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=ROOT)
    ap.add_argument("--steps", type=int, default=1500)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = random.Random(0)
    train = [sample(rng) for _ in range(20000)]
    test = [sample(rng) for _ in range(20)]
    x = one_hot([t for t, _, _ in train])
    y = torch.tensor([[c] for _, _, c in train], dtype=torch.float32)
    model = SmallBPNet()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(a.steps):
        i = torch.randint(0, len(train), (128,))
        loss = nn.functional.mse_loss(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == a.steps - 1:
            print(f"step {step}: mse {loss.item():.4f}", flush=True)
    model.eval()
    xt = one_hot([t for t, _, _ in test])
    yt = torch.tensor([[c] for _, _, c in test])
    with torch.no_grad():
        mse = nn.functional.mse_loss(model(xt), yt).item()
    print(f"held-out mse {mse:.4f}")
    os.makedirs(os.path.join(a.out, "models"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    path = os.path.join(a.out, "models", "motifs.onnx")
    torch.onnx.export(model, (xt[:1],), path, input_names=["sequence"], output_names=["log_count"],
                      dynamic_axes={"sequence": {0: "batch"}, "log_count": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    with open(os.path.join(a.out, "data", "motifs.fa"), "w") as f:
        for k, (text, sites, count) in enumerate(test):
            names = " ".join(f"{n}@{p}" for n, p in sites) or "no-site"
            f.write(f">test{k} {names}\n")
            for i in range(0, LENGTH, 60):
                f.write(text[i:i + 60] + "\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and data/motifs.fa")


if __name__ == "__main__":
    main()
