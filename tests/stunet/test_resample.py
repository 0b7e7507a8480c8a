"""Streamed logit resampling equals one trilinear ``F.interpolate``; shapes keep the physical extent."""

from __future__ import annotations

import itertools

import pytest
torch = pytest.importorskip("torch")

from torch.nn import functional as F

from stunet.resample import iter_label_slabs, iter_resampled_slabs, resampled_shape


def test_resampled_shape_keeps_extent_in_array_order() -> None:
    assert resampled_shape(shape=(300, 512, 512), spacing_mm=(2.5, 0.8, 0.8), target_spacing_mm=(1.5,) * 3) == (500, 273, 273)
    assert resampled_shape(shape=(1, 2, 3), spacing_mm=(0.1, 0.1, 0.1), target_spacing_mm=(1.5,) * 3) == (1, 1, 1)
    with pytest.raises(ValueError, match="positive"):
        resampled_shape(shape=(1, 2, 3), spacing_mm=(0, 1, 1), target_spacing_mm=(1.5,) * 3)


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
