"""The streamed, Gaussian-weighted sliding window equals a naive full-volume aggregation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from stunet.sliding_window import aggregate_logits, gaussian_importance, iter_logit_slabs, tile_starts

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
    assert starts[0] == 0 and starts[-1] == size - patch
    assert all(0 < b - a <= patch * step for a, b in zip(starts, starts[1:]))


def test_gaussian_peaks_at_the_centre_is_symmetric_and_stays_positive() -> None:
    g = gaussian_importance((16, 16, 32))
    assert g.min() > 0
    assert g[7:9, 7:9, 15:17].min() == g.max()
    torch.testing.assert_close(g, g.flip(0, 1, 2))
    # sigma = 16 / 8 = 2 along z: index 0 is 7.5 from the centre, index 8 is 0.5 from it.
    assert g[0, 8, 16] / g[8, 8, 16] == pytest.approx(math.exp(-(7.5**2 - 0.5**2) / (2 * 2**2)), rel=1e-4)


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
