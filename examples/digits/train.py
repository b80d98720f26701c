"""Train configs/models/digits_fire.yaml's network on scikit-learn's digits with PyTorch, on this machine.

    python3 examples/digits/train.py OUT_DIR

writes OUT_DIR/digits_fire.pth (a state_dict keyed by the YAML's layer names, for `neoncc convert-weights`),
OUT_DIR/test.f32 (the held-out digits, float32 NCHW back to back), OUT_DIR/test_labels.npy and
OUT_DIR/torch_probabilities.npy (PyTorch's outputs on them). Seeded and single-threaded: the same every run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F


class Fire(nn.Module):
    def __init__(self, inputs: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze1x1 = nn.Conv2d(inputs, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze1x1(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], 1)


class DigitsFire(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.fire2, self.fire3, self.fire4 = Fire(16, 8, 16), Fire(32, 8, 16), Fire(32, 16, 32)
        self.conv10 = nn.Conv2d(64, 10, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(self.fire3(self.fire2(x)), 3, 2, ceil_mode=True)
        x = F.dropout(self.fire4(x), 0.5, self.training)
        return F.adaptive_avg_pool2d(self.conv10(x), 1).flatten(1)  # logits (no ReLU, unlike SqueezeNet)


def dataset() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as 1x32x32 float32 in 0..1 (8x8 upscaled 4x), split 80/20 with a fixed seed."""
    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((4, 4)))[:, None].astype(np.float32)
    return train_test_split(images, digits.target, test_size=0.2, random_state=0, stratify=digits.target)


def train(epochs: int = 40) -> tuple[DigitsFire, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = dataset()
    model = DigitsFire()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval(), x_test, y_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    model, x_test, y_test = train()
    with torch.no_grad():
        probabilities = F.softmax(model(torch.from_numpy(x_test)), 1).numpy()
    torch.save(model.state_dict(), out / "digits_fire.pth")
    x_test.astype("<f4").tofile(out / "test.f32")
    np.save(out / "test_labels.npy", y_test)
    np.save(out / "torch_probabilities.npy", probabilities)
    accuracy = float((probabilities.argmax(1) == y_test).mean())
    print(f"{out}: trained; PyTorch held-out accuracy {accuracy:.4f} on {len(y_test)} digits")


if __name__ == "__main__":
    main()
