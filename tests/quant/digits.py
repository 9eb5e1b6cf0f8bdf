"""Two small models trained on scikit-learn's digits (8x8 images, 10 classes) in seconds.

    train, test = digits_split()                    # (x [N,1,8,8] f32, y [N]) each
    model = train_model("vit", train)              # an eval-mode nn.Module, fixed seeds

"vit" is a 2-block ViT (2x2 patches, 16 tokens + a class token, dim 32, 2 heads, GELU MLP,
LayerNorm); "hybrid" a conv stem (conv-BN-ReLU, strided conv) under one attention block.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def digits_split(seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5)[:, None]  # [1797, 1, 8, 8] in [-0.5, 0.5]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.7 * len(y))
    tr, te = idx[:cut], idx[cut:]
    return (x[tr], y[tr]), (x[te], y[te])


def _modules() -> dict[str, Any]:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, n, c = x.shape
            qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            att = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
            y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
            x = x + self.proj(y)
            return x + self.mlp(self.norm2(x))

    class ViT(nn.Module):
        def __init__(self, dim: int = 32) -> None:
            super().__init__()
            self.patch = nn.Conv2d(1, dim, 2, stride=2)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
            self.blocks = nn.Sequential(Block(dim, 2), Block(dim, 2))
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], 1) + self.pos
            return self.head(self.norm(self.blocks(t))[:, 0])

    class Hybrid(nn.Module):
        def __init__(self, dim: int = 32) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim),
                                      nn.ReLU())
            self.block = Block(dim, 2)
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.stem(x).flatten(2).transpose(1, 2)          # [B, 16, dim]
            return self.head(self.norm(self.block(t)).mean(1))

    return {"vit": ViT, "hybrid": Hybrid}


def train_model(kind: str, train: tuple[np.ndarray, np.ndarray], epochs: int = 30, seed: int = 0) -> Any:
    import torch
    torch.manual_seed(seed)
    model = _modules()[kind]()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(-1) == y).mean() * 100.0)
