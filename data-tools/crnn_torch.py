"""crnn_torch.py - the ocrkd network (SPEC "The network") in PyTorch.

For: producing reference numbers for the C tests (tests/ref/make_refs.py),
and moving weights between PyTorch and ocrkd (torch2ocrkd.py, ocrkd2torch.py).
Module names are chosen so that state_dict() keys are exactly the tensor
names of an ocrkd checkpoint's /params group.
Not for: training (ocrkd does that), data loading, decoding.

    model = CRNN(blocks=[2, 2, 2, 2], block="basic", width=64, feature_dim=256,
                 enc_layers=2, enc_hidden=256, num_classes=37)
    logp, enc = model(images)   # images (B,1,32,W) -> logp (T,B,K), enc (T,B,2H)
"""
import os
import sys

import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the names, shapes and architecture inference live in the torch-free module
from crnn_names import DEPTHS, STAGE_STRIDES, arch_from_state_dict, stage_planes  # noqa: E402,F401

IMAGE_H = 32


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: 3x3 (stride) -> 3x3, identity or 1x1 downsample."""

    expansion = 1

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: stride on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, cin, planes, stride, downsample):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Extractor(nn.Module):
    """ResNet without maxpool or fc; mean over height; neck Linear(C, D).
    forward: (B,1,32,W) -> (T,B,D)."""

    def __init__(self, blocks, block, width, feature_dim):
        """width: w (stages w, 2w, 4w, 8w) or a list of 4 stage widths."""
        super().__init__()
        cls = Bottleneck if block == "bottleneck" else BasicBlock
        stem = stage_planes(width, 0)
        self.conv1 = conv3x3(1, stem)
        self.bn1 = nn.BatchNorm2d(stem)
        cin = stem
        for i, (n, stride) in enumerate(zip(blocks, STAGE_STRIDES)):
            planes = stage_planes(width, i)
            layer, cin = self._make_layer(cls, cin, planes, n, stride)
            setattr(self, "layer%d" % (i + 1), layer)
        self.out_channels = cin
        self.neck = nn.Linear(cin, feature_dim)

    @staticmethod
    def _make_layer(cls, cin, planes, n, stride):
        cout = planes * cls.expansion
        down = None
        if stride != (1, 1) or cin != cout:
            down = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
        layers = [cls(cin, planes, stride, down)]
        layers += [cls(cout, planes, 1, None) for _ in range(n - 1)]
        return nn.Sequential(*layers), cout

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = x.mean(dim=2).permute(2, 0, 1)  # (B,C,h,T) -> (T,B,C)
        return self.neck(x)


class CRNN(nn.Module):
    """extractor -> nn.LSTM(D, H, layers, bidirectional) -> classifier (2H -> K).
    forward(images) returns (log_softmax(logits) (T,B,K), encoder output (T,B,2H))."""

    def __init__(self, blocks, block, width, feature_dim, enc_layers, enc_hidden, num_classes):
        super().__init__()
        self.arch = dict(blocks=list(blocks), block=block, width=width,
                         feature_dim=feature_dim, enc_layers=enc_layers,
                         enc_hidden=enc_hidden, num_classes=num_classes)
        self.extractor = Extractor(blocks, block, width, feature_dim)
        self.encoder = nn.LSTM(feature_dim, enc_hidden, enc_layers, bidirectional=True)
        self.classifier = nn.Linear(2 * enc_hidden, num_classes)

    def forward(self, images):
        feat = self.extractor(images)
        enc, _ = self.encoder(feat)
        return F.log_softmax(self.classifier(enc), dim=-1), enc


def arch_from_depth(depth):
    """18|34|50|101|152 -> (block, blocks)."""
    if depth not in DEPTHS:
        raise ValueError("depth %r is not one of %s" % (depth, sorted(DEPTHS)))
    block, blocks = DEPTHS[depth]
    return block, list(blocks)


def time_steps(width):
    """T for an image width: two stride-2 3x3 convs (pad 1) along the width."""
    for _ in range(2):
        width = (width - 1) // 2 + 1
    return width
