"""torchvision's SqueezeNet module layout (torchvision/models/squeezenet.py), so the tests can write state_dicts
with its key names (features.3.squeeze.weight, classifier.1.bias, ...). torchvision itself does not load here:
its PyPI wheel for torch 2.13 (0.28.0) is a CUDA build whose operators fail with the pinned CPU torch wheel.
The weights come from tests/torch_reference.py's model by renaming keys; `load_state_dict(strict=True)` into this
layout and equal outputs show the renaming is right before any importer sees the file."""

from __future__ import annotations

import torch
from torch import nn

# Where torchvision's `features` Sequential holds fire2..fire9.
FIRE_INDICES = {"1_0": [3, 4, 5, 7, 8, 9, 10, 12], "1_1": [3, 4, 6, 7, 9, 10, 11, 12]}


class Fire(nn.Module):
    def __init__(self, inputs: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inputs, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def _pool() -> nn.Module:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class TorchvisionSqueezeNet(nn.Module):
    def __init__(self, version: str, num_classes: int = 1000):
        super().__init__()
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=7, stride=2), nn.ReLU(inplace=True), _pool(),
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                _pool(), Fire(512, 64, 256, 256))
        else:
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, stride=2), nn.ReLU(inplace=True), _pool(),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), _pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), _pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(512, num_classes, kernel_size=1),
                                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)


def torchvision_state_dict(reference: nn.Module, version: str) -> dict[str, torch.Tensor]:
    """tests/torch_reference.py's keys (conv1, fire2.squeeze1x1, ..., conv10) in torchvision's layout."""
    prefixes = {"conv1.": "features.0.", "conv10.": "classifier.1."}
    for number, index in enumerate(FIRE_INDICES[version], start=2):
        prefixes[f"fire{number}.squeeze1x1."] = f"features.{index}.squeeze."
        prefixes.update({f"fire{number}.{part}.": f"features.{index}.{part}." for part in ("expand1x1", "expand3x3")})
    renamed = {}
    for key, value in reference.state_dict().items():
        prefix = next(p for p in prefixes if key.startswith(p))
        renamed[prefixes[prefix] + key.removeprefix(prefix)] = value
    return renamed


def torchvision_model(reference: nn.Module, version: str) -> TorchvisionSqueezeNet:
    model = TorchvisionSqueezeNet(version).eval()
    model.load_state_dict(torchvision_state_dict(reference, version), strict=True)
    return model
