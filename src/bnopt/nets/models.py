"""Models: a CIFAR VGG and the 25-layer deep linear network, each with a pluggable normalization.

Both are a sequence of `Block`s, weight layer -> norm -> activation, numbered 1..k: `model.blocks[i-1]`
is the paper's "layer #i" (for the VGG, the i-th conv layer; the classifier head is not a block).
Probes hook a block's `norm` output (the input of the nonlinearity) or its `act` output.
"""
from __future__ import annotations

import torch
from torch import nn

from bnopt.nets.norms import check_norm, make_norm

VGG_LAYOUTS = {  # channels per conv layer at width 1.0; 'M' = 2x2 max-pool
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}
ARCHS = (*VGG_LAYOUTS, "dln")


class Block(nn.Module):
    """layer -> norm -> act. `layer` holds the weight W_i that ICS and the probes refer to."""

    def __init__(self, layer: nn.Module, norm: nn.Module, act: nn.Module):
        super().__init__()
        self.layer, self.norm, self.act = layer, norm, act

    def forward(self, x):
        return self.act(self.norm(self.layer(x)))


def glorot_init(model: nn.Module) -> None:
    """Glorot (Xavier) uniform weights and zero biases for every conv/linear layer (TF defaults)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VGG(nn.Module):
    """CIFAR VGG: 3x3 conv (padding 1) -> norm -> ReLU blocks with max-pools, then a small head.

    With 32x32 inputs the five pools leave a 1x1 map, so the head sees C_last features.
    """

    MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}

    def __init__(self, layout: list, norm: str = "none", width: float = 1.0, head: str = "linear",
                 num_classes: int = 10, conv_bias: bool = True, norm_kwargs: dict | None = None,
                 memory_format: str = "contiguous"):
        super().__init__()
        if memory_format not in self.MEMORY_FORMATS:
            raise ValueError(f"unknown memory_format {memory_format!r}; valid choices: "
                             f"{', '.join(self.MEMORY_FORMATS)}")
        self.memory_format = self.MEMORY_FORMATS[memory_format]
        norm_kwargs = norm_kwargs or {}
        layers, blocks, c_in = [], [], 3
        self._block_pos = []   # index in self.features of each block
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = max(1, int(round(item * width)))
            block = Block(nn.Conv2d(c_in, c_out, 3, padding=1, bias=conv_bias),
                          make_norm(norm, c_out, spatial=True, **norm_kwargs), nn.ReLU())
            self._block_pos.append(len(layers))
            layers.append(block)
            blocks.append(block)
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.blocks = blocks  # plain list: the modules are registered through self.features
        if head == "linear":
            self.head = nn.Linear(c_in, num_classes)
        elif head == "mlp":
            self.head = nn.Sequential(nn.Linear(c_in, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                      nn.Linear(512, num_classes))
        else:
            raise ValueError(f"unknown VGG head {head!r}; valid choices: linear, mlp")
        glorot_init(self)
        self.to(memory_format=self.memory_format)   # conv weights (and their grads) in that layout

    def forward(self, x):
        return self.head(self.features(x.contiguous(memory_format=self.memory_format)).flatten(1))

    def forward_from(self, i: int, h):
        """The network from block #i on (1-based), given block i's input h."""
        for m in self.features[self._block_pos[i - 1]:]:
            h = m(h)
        return self.head(h.flatten(1))


class FeatureMajorLinear(nn.Linear):
    """nn.Linear without bias that returns x W^T stored feature-major: (W x^T)^T, a (N, C) view of
    a contiguous (C, N) tensor. For the DLN's 1000 x 10 activations MKL computes W x^T about 7x
    faster than x W^T (9 vs 69 us, measured here); the next layer's x^T is then contiguous again.
    Same values up to rounding, same parameters; callers see an ordinary (N, C) tensor."""

    def forward(self, x):
        if self.bias is not None or x.dim() != 2:
            return super().forward(x)
        return (self.weight @ x.t()).t()


class DeepLinear(nn.Module):
    """k square linear layers, no bias, no nonlinearity: x -> W_k ... W_1 x (paper App. A.1).

    The normalization follows the hidden layers 1..k-1, not the output layer [choice: the paper
    plots layers 1..24 of 25 and says no more].
    """

    def __init__(self, depth: int = 25, dim: int = 10, norm: str = "none",
                 norm_kwargs: dict | None = None):
        super().__init__()
        norm_kwargs = norm_kwargs or {}
        self.blocks = nn.ModuleList(
            Block(FeatureMajorLinear(dim, dim, bias=False),
                  make_norm(norm, dim, spatial=False, **norm_kwargs) if i < depth - 1 else   # the output layer
                  make_norm("none", dim, spatial=False),                                    # has none (nor options)
                  nn.Identity())
            for i in range(depth))
        glorot_init(self)

    def forward(self, x):
        return self.forward_from(1, x)

    def forward_from(self, i: int, h):
        """The network from block #i on (1-based), given block i's input h."""
        for b in self.blocks[i - 1:]:
            h = b(h)
        return h


def build_model(cfg) -> nn.Module:
    """The network a model configuration (`bnopt.runs.config.ModelConfig`, or anything with its fields) declares."""
    check_norm(cfg.norm)
    if cfg.arch in VGG_LAYOUTS:
        return VGG(VGG_LAYOUTS[cfg.arch], cfg.norm, cfg.width, cfg.head, cfg.num_classes,
                   cfg.conv_bias, cfg.norm_kwargs, cfg.memory_format)
    if cfg.arch == "dln":
        return DeepLinear(cfg.depth, cfg.dim, cfg.norm, cfg.norm_kwargs)
    raise ValueError(f"unknown architecture {cfg.arch!r}; valid choices: {', '.join(ARCHS)}")


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The weight layer of each block, in order: index i-1 is the paper's layer #i."""
    return [b.layer for b in model.blocks]
