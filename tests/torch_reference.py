"""SqueezeNet v1.0 / v1.1 written directly in PyTorch from the published architecture, independent of neoncc's
YAML, graph and generator: the reference the engine is checked against. Parameter names follow Caffe's layer
names (conv1, fire2.squeeze1x1, ..., conv10), which is the .npz key format the build takes."""

from __future__ import annotations

import numpy as np
import torch
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
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], dim=1)


# (in, squeeze, expand) of fire2..fire9, the same in both versions.
FIRES = [(None, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128), (256, 48, 192), (384, 48, 192),
         (384, 64, 256), (512, 64, 256)]


class SqueezeNet(nn.Module):
    def __init__(self, version: str):
        super().__init__()
        if version == "1_0":
            self.conv1, pools_after = nn.Conv2d(3, 96, 7, stride=2), {"conv1", "fire4", "fire8"}
        else:
            self.conv1, pools_after = nn.Conv2d(3, 64, 3, stride=2), {"conv1", "fire3", "fire5"}
        self.pools_after = pools_after
        for index, (inputs, squeeze, expand) in enumerate(FIRES, start=2):
            self.add_module(f"fire{index}", Fire(inputs or self.conv1.out_channels, squeeze, expand))
        self.conv10 = nn.Conv2d(512, 1000, 1)

    def features(self, x, attenuation: float = 1.0):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for index in range(2, 10):
            x = getattr(self, f"fire{index}")(x)
            if f"fire{index}" in self.pools_after:
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        return x * attenuation  # dropout at inference: identity, or non-inverted dropout's attenuation

    def logits(self, x, attenuation: float = 1.0):
        x = F.relu(self.conv10(self.features(x, attenuation)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x, attenuation: float = 1.0):
        return F.softmax(self.logits(x, attenuation), dim=1)


def make_model(version: str, seed: int, sample: torch.Tensor) -> SqueezeNet:
    """Seeded weights, with conv10 scaled so the logits on `sample` spread by about 1: the softmax is then far
    from one-hot, and a 1e-5 tolerance on probabilities is a real test."""
    torch.manual_seed(seed)
    model = SqueezeNet(version).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.uniform_(module.bias, -0.05, 0.05)
        spread = model.logits(sample).std().item()
        model.conv10.weight.mul_(1.0 / spread)
        model.conv10.bias.mul_(1.0 / spread)
    return model


def state_npz(model: nn.Module, path) -> None:
    np.savez(path, **{k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()})
