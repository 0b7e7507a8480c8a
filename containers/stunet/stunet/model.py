"""STU-Net (Huang et al., arXiv 2304.06716) with the parameter layout of the official checkpoints.

Why this layout matters: the official ``*_ep4k.model`` files must load with a
*strict* ``load_state_dict``, so module names, registration order and shapes
here follow ``stunet_layout.json`` exactly (``conv_blocks_context``,
``upsample_layers``, ``conv_blocks_localization``, ``seg_outputs``; inside a
block ``conv1, norm1, conv2, norm2[, conv3]``). Tensors are ``(N, C, D, H, W)``
in SimpleITK array order ``(z, y, x)``; the last pooling ``[1, 1, 2]`` strides
only the last axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

#: Pooling of the TotalSegmentator plan (Task101), one entry per down-sampling.
POOL_STRIDES: tuple[tuple[int, int, int], ...] = ((2, 2, 2),) * 4 + ((1, 1, 2),)
#: 104 TotalSegmentator v1 classes + background; channel index = label value.
DEFAULT_NUM_CLASSES = 105
#: A patch must be divisible by the product of the strides, per axis.
PATCH_DIVISOR: tuple[int, int, int] = (16, 16, 32)
LEAKY_SLOPE = 0.01


@dataclass(frozen=True, kw_only=True)
class StunetConfig:
    """Widths and blocks per stage; everything else is fixed by the TotalSegmentator plan."""

    dims: tuple[int, ...]
    depth: tuple[int, ...]
    num_classes: int = DEFAULT_NUM_CLASSES
    in_channels: int = 1

    def __post_init__(self) -> None:
        if len(self.dims) != 6 or len(self.depth) != 6:
            raise ValueError(f"STU-Net has 6 stages; got dims={self.dims}, depth={self.depth}")
        if min(self.dims) < 1 or min(self.depth) < 1 or self.num_classes < 1 or self.in_channels < 1:
            raise ValueError(f"dims, depth, num_classes and in_channels must be positive: {self}")


#: The four released sizes (paper table / stunet_layout.json ``sizes``).
SIZES: dict[str, StunetConfig] = {
    "small": StunetConfig(dims=(16, 32, 64, 128, 256, 256), depth=(1,) * 6),
    "base": StunetConfig(dims=(32, 64, 128, 256, 512, 512), depth=(1,) * 6),
    "large": StunetConfig(dims=(64, 128, 256, 512, 1024, 1024), depth=(2,) * 6),
    "huge": StunetConfig(dims=(96, 192, 384, 768, 1536, 1536), depth=(3,) * 6),
}


def size_config(name: str, *, num_classes: int = DEFAULT_NUM_CLASSES, in_channels: int = 1) -> StunetConfig:
    """The config of a named size, with the head and input width the checkpoint needs."""
    try:
        base = SIZES[name]
    except KeyError:
        raise ValueError(f"unknown STU-Net size {name!r}; known sizes: {', '.join(SIZES)}") from None
    return StunetConfig(dims=base.dims, depth=base.depth, num_classes=num_classes, in_channels=in_channels)


def size_name(config: StunetConfig) -> str | None:
    """The released size whose widths and depths equal ``config``'s, else None."""
    for name, known in SIZES.items():
        if known.dims == tuple(config.dims) and known.depth == tuple(config.depth):
            return name
    return None


class BasicResBlock(nn.Module):
    """Post-activation residual block: ``act(norm2(conv2(act(norm1(conv1 x)))) + shortcut x)``.

    The 1x1 projection ``conv3`` exists only in the first block of a stage, where
    width or stride change (the official checkpoints have no ``conv3`` keys elsewhere).
    """

    def __init__(self, *, in_channels: int, out_channels: int, stride: tuple[int, int, int], project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.norm1 = nn.InstanceNorm3d(out_channels, eps=1e-5, affine=True)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = nn.InstanceNorm3d(out_channels, eps=1e-5, affine=True)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.conv3 = nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        shortcut = self.conv3(x) if self.conv3 is not None else x
        return self.act(y + shortcut)


class UpsampleNearest(nn.Module):
    """Nearest-neighbour upsampling by the pooling factor of its level, then a 1x1 conv."""

    def __init__(self, *, in_channels: int, out_channels: int, scale: tuple[int, int, int]) -> None:
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The 1x1 conv commutes with nearest upsampling; running it first is
        # identical and moves fewer voxels through the conv.
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode="nearest")


def _stage(*, in_channels: int, out_channels: int, stride: tuple[int, int, int], blocks: int) -> nn.Sequential:
    first = BasicResBlock(in_channels=in_channels, out_channels=out_channels, stride=stride, project=True)
    rest = [
        BasicResBlock(in_channels=out_channels, out_channels=out_channels, stride=(1, 1, 1), project=False)
        for _ in range(blocks - 1)
    ]
    return nn.Sequential(first, *rest)


class STUNet(nn.Module):
    """Six-stage residual U-Net; ``forward`` returns full-resolution logits ``(N, C, D, H, W)``.

    With ``deep_supervision=True`` it returns the five heads, highest resolution
    first, as the training code does; inference never needs them, so the
    low-resolution heads are skipped otherwise (same result, less work).
    """

    def __init__(self, config: StunetConfig, *, deep_supervision: bool = False) -> None:
        super().__init__()
        self.config = config
        self.deep_supervision = deep_supervision
        dims, depth = config.dims, config.depth
        strides = ((1, 1, 1),) + POOL_STRIDES
        self.conv_blocks_context = nn.ModuleList(
            _stage(
                in_channels=config.in_channels if d == 0 else dims[d - 1],
                out_channels=dims[d],
                stride=strides[d],
                blocks=depth[d],
            )
            for d in range(6)
        )
        self.upsample_layers = nn.ModuleList(
            UpsampleNearest(in_channels=dims[5 - u], out_channels=dims[4 - u], scale=POOL_STRIDES[4 - u])
            for u in range(5)
        )
        self.conv_blocks_localization = nn.ModuleList(
            _stage(in_channels=2 * dims[4 - u], out_channels=dims[4 - u], stride=(1, 1, 1), blocks=depth[4 - u])
            for u in range(5)
        )
        self.seg_outputs = nn.ModuleList(nn.Conv3d(dims[4 - u], config.num_classes, kernel_size=1) for u in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        skips = []
        for stage in self.conv_blocks_context[:-1]:
            x = stage(x)
            skips.append(x)
        x = self.conv_blocks_context[-1](x)
        heads = []
        for u in range(5):
            x = self.upsample_layers[u](x)
            x = self.conv_blocks_localization[u](torch.cat((x, skips[4 - u]), dim=1))
            if self.deep_supervision or u == 4:
                heads.append(self.seg_outputs[u](x))
        if self.deep_supervision:
            return tuple(reversed(heads))
        return heads[-1]


def init_he_(model: nn.Module, *, seed: int | None = None) -> nn.Module:
    """nnU-Net v1's He init (kaiming normal, a=0.01, zero bias): random weights of the real scale."""
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, generator=generator)
            nn.init.zeros_(module.bias)
    return model


def build_stunet(config: StunetConfig, *, device: torch.device | str | None = None) -> STUNet:
    """Build the network, on ``device`` (use ``"meta"`` to inspect large/huge without allocating)."""
    with torch.device(device or "cpu"):
        return STUNet(config)


def parameter_count(model: nn.Module) -> int:
    """Number of scalars in the state dict (the figure the paper reports)."""
    return sum(t.numel() for t in model.state_dict().values())
