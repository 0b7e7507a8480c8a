"""The streamed, Gaussian-weighted sliding window equals a naive full-volume aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

torch = pytest.importorskip("torch")

from stunet.sliding_window import aggregate_logits, gaussian_1d, gaussian_importance, iter_logit_slabs, tile_starts

PATCH = (16, 16, 32)


def _identity_like(tile: torch.Tensor) -> torch.Tensor:
    """Three channels that are pointwise functions of the input: aggregation must reproduce them."""
    return torch.cat([tile, 2 * tile + 1, -tile], dim=1)


def _tile_dependent(tile: torch.Tensor) -> torch.Tensor:
    """Output that differs between overlapping tiles (depends on the tile's mean), so weights matter."""
    return torch.cat([tile + tile.mean(), tile * tile.std()], dim=1)


def _naive(volume: torch.Tensor, predict, *, num_classes: int, patch, step: float) -> torch.Tensor:
    """Reference: pad, accumulate into full-size logit and weight volumes, divide, crop."""
    pads = [max(p - s, 0) for s, p in zip(volume.shape, patch)]
    before = [m // 2 for m in pads]
    padded = torch.zeros([s + m for s, m in zip(volume.shape, pads)])
    padded[tuple(slice(b, b + s) for b, s in zip(before, volume.shape))] = volume
    logits = torch.zeros((num_classes, *padded.shape))
    weights = torch.zeros(padded.shape)
    g = gaussian_importance(patch)
    for z in tile_starts(size=padded.shape[0], patch=patch[0], step_fraction=step):
        for y in tile_starts(size=padded.shape[1], patch=patch[1], step_fraction=step):
            for x in tile_starts(size=padded.shape[2], patch=patch[2], step_fraction=step):
                region = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                logits[(slice(None), *region)] += predict(padded[region][None, None])[0] * g
                weights[region] += g
    out = logits / weights
    return out[(slice(None), *(slice(b, b + s) for b, s in zip(before, volume.shape)))]


@pytest.mark.parametrize("size,patch,step", [(100, 32, 0.5), (32, 32, 0.5), (33, 16, 0.5), (50, 16, 0.25), (70, 32, 1.0)])
def test_tile_starts_cover_the_axis_with_bounded_steps(size: int, patch: int, step: float) -> None:
    starts = tile_starts(size=size, patch=patch, step_fraction=step)
    # nnU-Net's compute_steps_for_sliding_window, restated.
    count = int(np.ceil((size - patch) / (patch * step))) + 1
    actual = (size - patch) / (count - 1) if count > 1 else 99999999999
    assert starts == [int(np.round(actual * i)) for i in range(count)]
    assert starts[0] == 0 and starts[-1] == size - patch
    assert all(0 < b - a <= patch * step for a, b in zip(starts, starts[1:]))


def _nnunet_gaussian(patch, fraction: float = 1 / 8) -> np.ndarray:
    """nnU-Net's recipe: a unit impulse at ``patch // 2`` blurred by ``gaussian_filter(sigma=patch/8)``, max 1,
    zeros lifted to the smallest non-zero value (in float32, the map's precision in nnU-Net v1)."""
    impulse = np.zeros(patch)
    impulse[tuple(p // 2 for p in patch)] = 1
    blurred = ndimage.gaussian_filter(impulse, [p * fraction for p in patch], 0, mode="constant", cval=0)
    out = (blurred / blurred.max()).astype(np.float32)
    out[out == 0] = out[out != 0].min()
    return out


@pytest.mark.parametrize("patch", [(16, 16, 32), (128, 128, 128), (32, 48, 64)])
def test_gaussian_is_nnunets_importance_map(patch) -> None:
    g = gaussian_importance(patch)
    assert g.min() > 0  # no zeros to clip for multiples of 16
    np.testing.assert_allclose(g.numpy(), _nnunet_gaussian(patch), rtol=1e-5, atol=1e-12)
    # The peak is at patch // 2, not at the centre (patch - 1) / 2: the map is not symmetric.
    assert g[tuple(p // 2 for p in patch)] == g.max() == 1
    assert not torch.equal(g, g.flip(0, 1, 2))


def test_gaussian_truncation_and_zero_clipping_follow_scipy() -> None:
    """An odd patch, where scipy's 4-sigma truncation leaves zeros that nnU-Net lifts to the smallest value."""
    g1 = gaussian_1d(length=9)  # sigma 1.125, radius int(4.5 + 0.5) = 5: every index is within reach
    assert g1.min() > 0
    g1 = gaussian_1d(length=7, sigma_fraction=1 / 16)  # sigma 0.4375, radius 2: index 0 is cut off
    assert g1[0] == 0 and g1[1] > 0
    full = gaussian_importance((7, 9, 7), sigma_fraction=1 / 16)
    reference = _nnunet_gaussian((7, 9, 7), fraction=1 / 16)
    assert (reference == reference.min()).sum() > 1  # the clipping rule did apply
    np.testing.assert_allclose(full.numpy(), reference, rtol=1e-5, atol=0)


@pytest.mark.parametrize("shape", [(37, 21, 50), (10, 40, 20), (16, 16, 32), (5, 7, 9)])
def test_identity_like_model_is_reproduced_exactly(shape: tuple[int, int, int]) -> None:
    volume = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    out = aggregate_logits(volume, _identity_like, num_classes=3, patch_size=PATCH, step_fraction=0.5)
    assert out.shape == (3, *shape)
    torch.testing.assert_close(out[0], volume, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], 2 * volume + 1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[2], -volume, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape,step", [((45, 33, 70), 0.5), ((20, 17, 40), 0.3), ((9, 30, 31), 0.5)])
def test_streamed_aggregation_equals_naive_weighted_average(shape, step: float) -> None:
    volume = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    got = aggregate_logits(volume, _tile_dependent, num_classes=2, patch_size=PATCH, step_fraction=step)
    want = _naive(volume, _tile_dependent, num_classes=2, patch=PATCH, step=step)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_slabs_are_ordered_disjoint_and_bounded() -> None:
    volume = torch.randn(61, 20, 40)
    seen = []
    for z0, slab in iter_logit_slabs(volume, _identity_like, num_classes=3, patch_size=PATCH, step_fraction=0.5, slab_depth=3):
        assert slab.shape[0] == 3 and 1 <= slab.shape[1] <= 3 and slab.shape[2:] == (20, 40)
        seen.extend(range(z0, z0 + slab.shape[1]))
    assert seen == list(range(61))


def test_wrong_predictor_output_is_reported() -> None:
    with pytest.raises(ValueError, match="predictor returned"):
        aggregate_logits(torch.zeros(16, 16, 32), _identity_like, num_classes=2, patch_size=PATCH)


def test_half_precision_buffer_stays_close_to_float32() -> None:
    volume = 5 * torch.randn(40, 20, 45, generator=torch.Generator().manual_seed(3))
    exact = aggregate_logits(volume, _tile_dependent, num_classes=2, patch_size=PATCH)
    half = torch.cat(
        [s for _, s in iter_logit_slabs(volume, _tile_dependent, num_classes=2, patch_size=PATCH, buffer_dtype=torch.float16)],
        dim=1,
    )
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, exact, atol=0.05, rtol=2e-3)
