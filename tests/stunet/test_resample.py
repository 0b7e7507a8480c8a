"""The resampling equals nnU-Net's (``resample_data_or_seg``), restated here with scipy, for images and logits.

nnU-Net itself is not a test dependency: the reference below restates its algorithm
(resize every slice with skimage's ``resize(mode='edge', anti_aliasing=False)``, which is
``scipy.ndimage.zoom(grid_mode=True, mode='nearest')`` plus a clip to the input range, then
``map_coordinates(order=0, mode='nearest')`` along the separate axis with its coordinate
map). ``benchmarks/stunet_vs_nnunet.py`` compares against nnU-Net itself.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")
from torch.nn import functional as F

from stunet.resample import (
    iter_label_slabs,
    iter_resampled_slabs,
    nearest_indices,
    nonzero_bbox,
    resample_image,
    resampled_shape,
    separate_axis,
)


def _skimage_resize(array: np.ndarray, shape, order: int) -> np.ndarray:
    """skimage.transform.resize(array, shape, order, mode='edge', anti_aliasing=False), restated."""
    array = array.astype(float)
    zoom = [1 / (i / o) for i, o in zip(array.shape, shape)]
    out = ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True)
    return np.clip(out, array.min(), array.max())


def _nnunet_resample(data: np.ndarray, new_shape, *, axis: int | None, order: int) -> np.ndarray:
    """nnU-Net's resample_data_or_seg for one channel (order_z = 0), restated."""
    if axis is None:
        return _skimage_resize(data, new_shape, order)
    shape = data.shape
    plane_shape = [n for a, n in enumerate(new_shape) if a != axis]
    tmp = list(new_shape)
    tmp[axis] = shape[axis]
    here = np.zeros(tmp)
    for i in range(shape[axis]):
        index = [slice(None)] * 3
        index[axis] = i
        here[tuple(index)] = _skimage_resize(data[tuple(index)], plane_shape, order)
    if shape[axis] == new_shape[axis]:
        return here
    grids = np.mgrid[: new_shape[0], : new_shape[1], : new_shape[2]]
    coords = np.array([float(o) / n * (g + 0.5) - 0.5 for o, n, g in zip(here.shape, new_shape, grids)])
    return ndimage.map_coordinates(here, coords, order=0, mode="nearest")


def test_resampled_shape_keeps_extent_in_array_order() -> None:
    assert resampled_shape(shape=(300, 512, 512), spacing_mm=(2.5, 0.8, 0.8), target_spacing_mm=(1.5,) * 3) == (500, 273, 273)
    assert resampled_shape(shape=(1, 2, 3), spacing_mm=(0.1, 0.1, 0.1), target_spacing_mm=(1.5,) * 3) == (1, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        resampled_shape(shape=(1, 2, 3), spacing_mm=(0, 1, 1), target_spacing_mm=(1.5,) * 3)


@pytest.mark.parametrize(
    "first,second,axis",
    [
        ((2.5, 0.8, 0.8), (1.5, 1.5, 1.5), 0),  # 3.125 > 3: z apart
        ((0.8, 2.5, 0.8), (1.5, 1.5, 1.5), 1),  # any axis can be the low-resolution one
        ((2.4, 0.8, 0.8), (1.5, 1.5, 1.5), None),  # exactly 3 is not beyond the threshold
        ((1.5, 1.5, 1.5), (0.7, 0.7, 3.0), 2),  # the second spacing decides when the first is isotropic
        ((3.0, 3.0, 0.5), (1.5, 1.5, 1.5), None),  # two axes tied for the largest spacing: plain 3-D
        ((5.0, 1.0, 1.0), (1.0, 1.0, 5.0), 0),  # the first spacing wins
    ],
)
def test_separate_axis_rule(first, second, axis) -> None:
    assert separate_axis(first, second) == axis


@pytest.mark.parametrize("in_size,out_size", [(60, 100), (100, 60), (7, 3), (3, 7), (10, 20), (20, 10), (5, 5), (1, 4), (4, 1)])
def test_nearest_indices_equal_map_coordinates_order_0(in_size: int, out_size: int) -> None:
    source = np.arange(in_size, dtype=float)
    coords = float(in_size) / out_size * (np.arange(out_size) + 0.5) - 0.5
    want = ndimage.map_coordinates(source, [coords], order=0, mode="nearest")
    assert nearest_indices(in_size=in_size, out_size=out_size).tolist() == want.astype(int).tolist()


def _ct_like(shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = rng.normal(40, 30, size=shape).astype(np.float32)
    volume[:, : shape[1] // 4] = -1000  # sharp edges make the spline overshoot: the clip matters
    return volume


@pytest.mark.parametrize(
    "shape,new_shape,axis",
    [
        ((12, 20, 18), (20, 11, 10), 0),  # z up, in-plane down
        ((12, 20, 18), (7, 30, 25), 0),  # z down, in-plane up
        ((16, 9, 20), (16, 15, 11), 1),
        ((10, 14, 9), (6, 8, 15), 2),
        ((12, 20, 18), (12, 11, 10), 0),  # no change along the separate axis
        ((12, 20, 18), (9, 13, 25), None),  # 3-D order 3
    ],
)
def test_image_resampling_equals_nnunet(shape, new_shape, axis) -> None:
    volume = _ct_like(shape)
    got = resample_image(volume, shape=new_shape, axis=axis)
    want = _nnunet_resample(volume, new_shape, axis=axis, order=3).astype(np.float32)
    assert got.dtype == np.float32 and got.shape == tuple(new_shape)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-3)
    assert got.min() >= volume.min() and got.max() <= volume.max()  # clipped like skimage


def test_image_resampling_is_the_identity_at_the_same_shape() -> None:
    volume = _ct_like((5, 6, 7))
    assert np.array_equal(resample_image(volume, shape=(5, 6, 7), axis=0), volume)


@pytest.mark.parametrize("out_shape", [(29, 20, 31), (7, 9, 11), (13, 9, 11), (4, 3, 5), (1, 1, 1)])
@pytest.mark.parametrize("slab", [1, 3, 13])
def test_streamed_resampling_equals_trilinear_interpolate(out_shape, slab: int) -> None:
    source = torch.randn(5, 13, 9, 11, generator=torch.Generator().manual_seed(0))
    slabs = ((z, source[:, z : z + slab]) for z in range(0, 13, slab))
    parts = list(iter_resampled_slabs(slabs, source_depth=13, out_shape=out_shape, out_chunk=2))
    assert [k for k, _ in parts] == list(itertools.accumulate([0] + [p.shape[1] for _, p in parts[:-1]]))
    assert all(1 <= p.shape[1] <= 2 for _, p in parts)
    got = torch.cat([p for _, p in parts], dim=1)
    want = F.interpolate(source[None], size=out_shape, mode="trilinear", align_corners=False)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "source_shape,out_shape,axis",
    [
        ((10, 9, 11), (17, 20, 23), 0),  # network grid -> an anisotropic CT grid (fewer z slices is typical)
        ((17, 9, 11), (10, 20, 23), 0),
        ((10, 9, 11), (13, 20, 5), 1),
        ((10, 9, 11), (13, 4, 30), 2),
        ((10, 9, 11), (13, 20, 23), None),
    ],
)
def test_streamed_output_resampling_equals_nnunet(source_shape, out_shape, axis) -> None:
    source = torch.randn(3, *source_shape, generator=torch.Generator().manual_seed(4))
    slabs = ((z, source[:, z : z + 4]) for z in range(0, source_shape[0], 4))
    got = torch.cat([p for _, p in iter_resampled_slabs(slabs, source_depth=source_shape[0], out_shape=out_shape, nearest_axis=axis)], dim=1)
    want = np.stack([_nnunet_resample(c.double().numpy(), out_shape, axis=axis, order=1) for c in source])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    labels = torch.cat(
        [lab for _, lab in iter_label_slabs([(0, source)], source_depth=source_shape[0], out_shape=out_shape, nearest_axis=axis)]
    )
    assert np.array_equal(labels.numpy(), want.argmax(0))


def test_labels_are_the_argmax_of_resampled_logits() -> None:
    source = torch.randn(4, 6, 5, 7, generator=torch.Generator().manual_seed(1))
    out_shape = (11, 8, 9)
    labels = torch.cat([lab for _, lab in iter_label_slabs([(0, source)], source_depth=6, out_shape=out_shape)])
    want = F.interpolate(source[None], size=out_shape, mode="trilinear", align_corners=False)[0].argmax(0)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels.long(), want)


def test_incomplete_stream_is_an_error() -> None:
    source = torch.randn(2, 6, 3, 3)
    with pytest.raises(ValueError, match="covered 3 of 6"):
        list(iter_resampled_slabs([(0, source[:, :3])], source_depth=6, out_shape=(12, 3, 3)))


def test_nonzero_bbox_is_nnunets_crop() -> None:
    volume = np.zeros((6, 7, 8), dtype=np.float32)
    volume[1, 2, 3] = -5
    volume[3, 5, 4] = 2
    volume[2, 3, 3:4] = 0  # a hole inside does not change the box
    assert nonzero_bbox(volume) == (slice(1, 4), slice(2, 6), slice(3, 5))
    assert nonzero_bbox(np.zeros((2, 3, 4))) == (slice(0, 2), slice(0, 3), slice(0, 4))
