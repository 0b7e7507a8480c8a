"""nnU-Net's resampling rules, between the image grid and the network's 1.5 mm grid, in array order ``(z, y, x)``.

The facts reproduced (nnU-Net v1 ``preprocessing/preprocessing.py`` and v2
``preprocessing/resampling/default_resampling.py`` agree on all of them):

- new shape per axis: ``round(old_spacing / new_spacing * old_size)``;
- the *separate-z* rule: if ``max(spacing) / min(spacing) > 3`` (``ANISOTROPY_THRESHOLD``), first
  for the spacing resampled *from*, else for the one resampled *to*, the axis with the largest
  spacing is handled apart: the other two are resized slice by slice, and that axis is then
  sampled with **order 0** (nearest). When two or three axes share the largest spacing there is
  no separate axis;
- the image is resized with order 3 (cubic B-spline) as ``skimage.transform.resize(order=3,
  mode='edge', anti_aliasing=False)`` does it: ``scipy.ndimage.zoom(grid_mode=True,
  mode='nearest')`` in float64, then clipped to the input's value range (per slice when the
  separate-z rule applies, since each slice is resized on its own);
- the network's output goes back with order 1 (linear, the same clamp-at-the-edge mapping), and
  order 0 along the separate axis; the argmax is taken after.

The nearest rule along the separate axis maps output index ``k`` to source coordinate
``in / out * (k + 0.5) - 0.5``, rounded half up (``floor(c + 0.5)``) and clamped, which is what
``scipy.ndimage.map_coordinates(order=0, mode='nearest')`` does with nnU-Net's coordinate map.

Why the output direction streams: 105 channels of a 512x512x300 CT are 33 GB in float32. Both
interpolations are separable, so the first axis is interpolated from the one or two source
slices it needs as they stream in, each output slice is then resampled in-plane and reduced to
labels at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

#: nnU-Net's ``RESAMPLING_SEPARATE_Z_ANISO_THRESHOLD`` (v1) / ``ANISO_THRESHOLD`` (v2).
ANISOTROPY_THRESHOLD = 3.0
#: Spline order of the image (nnU-Net: ``order=3``) and of the network output (``order=1``).
IMAGE_ORDER, OUTPUT_ORDER = 3, 1


def resampled_shape(*, shape: Sequence[int], spacing_mm: Sequence[float], target_spacing_mm: Sequence[float]) -> tuple[int, ...]:
    """Voxels per axis covering the same extent at the target spacing (nnU-Net's ``compute_new_shape``, at least 1)."""
    if len(shape) != len(spacing_mm) or len(shape) != len(target_spacing_mm):
        raise ValueError(f"shape {shape}, spacing {spacing_mm} and target {target_spacing_mm} differ in length")
    if min(spacing_mm) <= 0 or min(target_spacing_mm) <= 0:
        raise ValueError(f"spacings must be positive, got {spacing_mm} and {target_spacing_mm}")
    return tuple(max(1, int(round(s / t * n))) for n, s, t in zip(shape, spacing_mm, target_spacing_mm))


def _lowres_axis(spacing: Sequence[float]) -> int | None:
    """The one axis with the largest spacing if the spacing is anisotropic beyond the threshold."""
    if max(spacing) / min(spacing) <= ANISOTROPY_THRESHOLD:
        return None
    largest = [a for a, s in enumerate(spacing) if max(spacing) / s == 1]
    return largest[0] if len(largest) == 1 else None


def separate_axis(first: Sequence[float], second: Sequence[float]) -> int | None:
    """The axis resampled apart (order 0), or None: ``first`` spacing decides if anisotropic, else ``second``.

    nnU-Net v1 and v2 pass (from, to) when preprocessing; at export v1 passes (original,
    network) and v2 (network, original). If the deciding spacing has two or three axes
    tied for the largest spacing there is no separate axis (nnU-Net then resamples in 3-D).
    """
    for spacing in (first, second):
        if max(spacing) / min(spacing) > ANISOTROPY_THRESHOLD:
            return _lowres_axis(spacing)
    return None


def _zoom_like_skimage(array: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """``skimage.transform.resize(array, shape, order, mode='edge', anti_aliasing=False)`` on a float64 array."""
    factors = [i / o for i, o in zip(array.shape, shape)]
    out = ndimage.zoom(array, [1 / f for f in factors], order=order, mode="nearest", grid_mode=True)
    if out.shape != tuple(shape):
        raise AssertionError(f"zoom gave {out.shape}, expected {tuple(shape)}")
    np.clip(out, array.min(), array.max(), out=out)
    return out


def nearest_indices(*, in_size: int, out_size: int) -> np.ndarray:
    """nnU-Net's order-0 map along the separate axis: ``floor(in/out * (k + 0.5) - 0.5 + 0.5)``, clamped."""
    scale = float(in_size) / out_size
    coords = scale * (np.arange(out_size, dtype=np.float64) + 0.5) - 0.5
    return np.clip(np.floor(coords + 0.5), 0, in_size - 1).astype(np.int64)


def resample_image(volume: np.ndarray, *, shape: Sequence[int], axis: int | None) -> np.ndarray:
    """The image at ``shape``: order-3 spline, with the separate-z rule along ``axis`` (None: plain 3-D).

    Only the source slices the nearest rule picks are resized (nnU-Net resizes all of them
    and then picks; the result is the same).
    """
    shape = tuple(int(s) for s in shape)
    if volume.shape == shape:
        return volume.astype(np.float32, copy=False)
    if axis is None:
        return _zoom_like_skimage(volume.astype(np.float64), shape, IMAGE_ORDER).astype(np.float32)
    moved = np.moveaxis(volume, axis, 0)
    target = tuple(s for a, s in enumerate(shape) if a != axis)
    picks = nearest_indices(in_size=moved.shape[0], out_size=shape[axis]) if moved.shape[0] != shape[axis] else np.arange(shape[axis])
    out = np.empty((shape[axis], *target), dtype=np.float32)
    done: dict[int, int] = {}
    for k, source in enumerate(picks.tolist()):
        if source in done:
            out[k] = out[done[source]]
            continue
        plane = moved[source].astype(np.float64)
        out[k] = plane if plane.shape == target else _zoom_like_skimage(plane, target, IMAGE_ORDER)
        done[source] = k
    return np.moveaxis(out, 0, axis)


def axis_taps(*, in_size: int, out_size: int, nearest: bool) -> tuple[list[int], list[int], list[float]]:
    """For each output index along one axis: the two source indices and the weight of the second.

    Linear: ``F.interpolate(align_corners=False)``'s map, source = (k + 0.5) * in/out - 0.5,
    clamped at 0, upper neighbour clamped to the last index (which is ``ndimage``'s order 1
    with ``mode='nearest'``). Nearest: :func:`nearest_indices`, weight 0.
    """
    if nearest:
        index = nearest_indices(in_size=in_size, out_size=out_size).tolist()
        return index, index, [0.0] * out_size
    scale = in_size / out_size
    lower, upper, weights = [], [], []
    for k in range(out_size):
        source = max((k + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(source), in_size - 1)
        i1 = i0 + 1 if i0 < in_size - 1 else i0
        lower.append(i0)
        upper.append(i1)
        weights.append(source - i0 if i1 != i0 else 0.0)
    return lower, upper, weights


def _resample_plane(rows: torch.Tensor, *, size: tuple[int, int], nearest_dim: int | None) -> torch.Tensor:
    """``(C, m, H', W')`` -> ``(C, m, H, W)``: bilinear, or nearest along ``nearest_dim`` (2 or 3) first.

    Picking the nearest rows/columns first leaves that axis at its final size, where the
    bilinear step is the identity. (``index_select`` along an inner dimension is very slow
    on CPU, hence the move to the front.)
    """
    if nearest_dim is not None and rows.shape[nearest_dim] != size[nearest_dim - 2]:
        index = torch.from_numpy(nearest_indices(in_size=rows.shape[nearest_dim], out_size=size[nearest_dim - 2]))
        rows = rows.movedim(nearest_dim, 0)[index.to(rows.device)].movedim(0, nearest_dim)
    if tuple(rows.shape[-2:]) != tuple(size):
        rows = F.interpolate(rows.contiguous(), size=tuple(size), mode="bilinear", align_corners=False)
    return rows


def iter_resampled_slabs(
    slabs: Iterable[tuple[int, torch.Tensor]],
    *,
    source_depth: int,
    out_shape: Sequence[int],
    nearest_axis: int | None = None,
    out_chunk: int = 4,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Resample streamed ``(z0, (C, n, Y', X'))`` slabs to ``out_shape``; yield ``(k0, (C, m, Y, X))``.

    Linear along every axis except ``nearest_axis`` (order 0, nnU-Net's separate-z rule).
    Input slabs must arrive in order and cover ``[0, source_depth)``; output slabs come in
    order, cover ``[0, out_shape[0])`` and are at most ``out_chunk`` deep. Only the source
    slices still needed are kept.
    """
    depth, height, width = out_shape
    lower, upper, weights = axis_taps(in_size=source_depth, out_size=depth, nearest=nearest_axis == 0)
    nearest_dim = nearest_axis + 1 if nearest_axis in (1, 2) else None
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
                [
                    cache[lower[k]] if weights[k] == 0 else torch.lerp(cache[lower[k]], cache[upper[k]], weights[k])
                    for k in range(next_out, stop)
                ],
                dim=1,
            )
            yield next_out, _resample_plane(rows, size=(height, width), nearest_dim=nearest_dim)
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
    nearest_axis: int | None = None,
    out_chunk: int = 4,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Like :func:`iter_resampled_slabs`, reduced at once to ``uint8`` labels ``(m, Y, X)`` by argmax."""
    for k0, values in iter_resampled_slabs(
        slabs, source_depth=source_depth, out_shape=out_shape, nearest_axis=nearest_axis, out_chunk=out_chunk
    ):
        yield k0, values.argmax(dim=0).to(torch.uint8)


def nonzero_bbox(volume: np.ndarray) -> tuple[slice, ...]:
    """nnU-Net's crop: the bounding box of the voxels that are not exactly 0 (the whole array if none are).

    nnU-Net fills holes in that mask first; holes lie inside the box, so the box is the same.
    """
    mask = volume != 0
    box = []
    for axis in range(volume.ndim):
        others = tuple(a for a in range(volume.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        if hit.size == 0:
            return tuple(slice(0, n) for n in volume.shape)
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)
