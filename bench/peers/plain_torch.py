"""Peer (a): the plain PyTorch recipe most tutorials teach, timed as its own process.

ImageFolder + ToTensor, a 3-block CNN, Adam 1e-3, batch 32, 10 epochs, no augmentation.
Prints one JSON line: test accuracy and the wall time of training + evaluation.

Usage: python bench/peers/plain_torch.py DATA_ROOT [--epochs 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def three_block_cnn(num_classes: int) -> nn.Sequential:
    """conv-relu-pool x3 then a dense layer: the textbook CNN."""
    layers: list[nn.Module] = []
    channels = [3, 32, 64, 128]
    for c_in, c_out in itertools.pairwise(channels):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.Linear(128, num_classes)]
    return nn.Sequential(*layers)


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy over a loader."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    torch.manual_seed(0)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)])
    train = datasets.ImageFolder(f"{args.data}/train", tf)
    test = datasets.ImageFolder(f"{args.data}/test", tf)
    train_loader = DataLoader(train, batch_size=32, shuffle=True)
    test_loader = DataLoader(test, batch_size=128)
    model = three_block_cnn(len(train.classes))
    model(torch.zeros(1, 3, *train[0][0].shape[1:]))  # materialise the lazy layer
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        model.train()
        for x, y in train_loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    acc = evaluate(model, test_loader)
    print(json.dumps({"peer": "plain", "test_acc": acc, "train_s": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
