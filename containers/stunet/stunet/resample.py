"""Resampling between the image grid and the network's 1.5 mm grid, in array order ``(z, y, x)``.

Why hand-written streaming: the logits must be resampled back to the input grid
*before* the argmax (as nnU-Net does), and 105 channels of a 512x512x300 CT are
33 GB in float32. Trilinear interpolation is separable, so the first axis is
interpolated from the two neighbouring source slices as they stream in, and each
output slice is then interpolated in-plane and reduced to labels at once.

All interpolation uses PyTorch's ``align_corners=False`` mapping (voxel centres,
same physical extent), so the streamed result equals one ``F.interpolate`` call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch.nn import functional as F


def resampled_shape(*, shape: Sequence[int], spacing_mm: Sequence[float], target_spacing_mm: Sequence[float]) -> tuple[int, ...]:
    """Voxels per axis covering the same extent at the target spacing (at least 1)."""
    if len(shape) != len(spacing_mm) or len(shape) != len(target_spacing_mm):
        raise ValueError(f"shape {shape}, spacing {spacing_mm} and target {target_spacing_mm} differ in length")
    if min(spacing_mm) <= 0 or min(target_spacing_mm) <= 0:
        raise ValueError(f"spacings must be positive, got {spacing_mm} and {target_spacing_mm}")
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing_mm, target_spacing_mm))


def resample_volume(volume: torch.Tensor, *, shape: Sequence[int]) -> torch.Tensor:
    """Trilinear resampling of a ``(Z, Y, X)`` float volume to ``shape``."""
    if tuple(volume.shape) == tuple(shape):
        return volume
    return F.interpolate(volume[None, None], size=tuple(shape), mode="trilinear", align_corners=False)[0, 0]


def linear_taps(*, in_size: int, out_size: int) -> tuple[list[int], list[int], list[float]]:
    """For each output index: the two source indices and the weight of the second.

    Mirrors ``F.interpolate(..., align_corners=False)``: source = (i + 0.5) * in/out - 0.5,
    clamped at 0, upper neighbour clamped to the last index.
    """
    scale = in_size / out_size
    lower, upper, weights = [], [], []
    for i in range(out_size):
        source = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(source), in_size - 1)
        i1 = i0 + 1 if i0 < in_size - 1 else i0
        lower.append(i0)
        upper.append(i1)
        weights.append(source - i0 if i1 != i0 else 0.0)
    return lower, upper, weights


def iter_resampled_slabs(
    slabs: Iterable[tuple[int, torch.Tensor]],
    *,
    source_depth: int,
    out_shape: Sequence[int],
    out_chunk: int = 4,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Resample streamed ``(z0, (C, n, Y', X'))`` logit slabs to ``out_shape``; yield ``(k0, (C, m, Y, X))``.

    Input slabs must arrive in order and cover ``[0, source_depth)``; output slabs
    come in order, cover ``[0, out_shape[0])`` and are at most ``out_chunk`` deep.
    Only the few source slices still needed are kept.
    """
    depth, height, width = out_shape
    lower, upper, weights = linear_taps(in_size=source_depth, out_size=depth)
    cache: dict[int, torch.Tensor] = {}
    arrived, next_out = 0, 0
    for z0, slab in slabs:
        if z0 != arrived:
            raise ValueError(f"slabs must arrive in order: expected z0={arrived}, got {z0}")
        for j in range(slab.shape[1]):
            cache[z0 + j] = slab[:, j]
        arrived = z0 + slab.shape[1]
        while next_out < depth and upper[next_out] < arrived:
            stop = next_out
            while stop < depth and stop - next_out < out_chunk and upper[stop] < arrived:
                stop += 1
            rows = torch.stack(
                [cache[lower[k]] * (1.0 - weights[k]) + cache[upper[k]] * weights[k] for k in range(next_out, stop)]
            )
            if rows.shape[-2:] != (height, width):
                rows = F.interpolate(rows, size=(height, width), mode="bilinear", align_corners=False)
            yield next_out, rows.transpose(0, 1)
            next_out = stop
            if next_out < depth:
                for index in [i for i in cache if i < lower[next_out]]:
                    del cache[index]
    if next_out != depth:
        raise ValueError(f"slabs covered {arrived} of {source_depth} source slices; output stopped at {next_out}/{depth}")


def iter_label_slabs(
    slabs: Iterable[tuple[int, torch.Tensor]],
    *,
    source_depth: int,
    out_shape: Sequence[int],
    out_chunk: int = 4,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Like :func:`iter_resampled_slabs`, reduced at once to ``uint8`` labels ``(m, Y, X)`` by argmax."""
    for k0, logits in iter_resampled_slabs(slabs, source_depth=source_depth, out_shape=out_shape, out_chunk=out_chunk):
        yield k0, logits.argmax(dim=0).to(torch.uint8)
