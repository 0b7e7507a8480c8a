"""End-to-end inference keeps the input's geometry and puts labels where the image content is."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

torch = pytest.importorskip("torch")

from stunet.checkpoint import random_stunet
from stunet.errors import ConfigError
from stunet.inference import PIPELINES, InferenceSettings, preprocess, segment_array, segment_image, tile_predictor
from stunet.model import StunetConfig
from stunet.resample import resample_image, resampled_shape

from .synthetic import ct_like_image

SMALL = InferenceSettings(patch_size=(32, 32, 32), target_spacing_mm=(3.0, 3.0, 3.0), device="cpu")


class ThresholdModel(torch.nn.Module):
    """Label 1 wherever the z-scored intensity is above ``threshold``: a pointwise, known 'network'."""

    config = StunetConfig(dims=(1,) * 6, depth=(1,) * 6, num_classes=2)

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), x - self.threshold], dim=1)


def _midpoint_model(image: sitk.Image) -> ThresholdModel:
    """Threshold halfway between object (300) and background (-900), in z-scored units."""
    array = sitk.GetArrayFromImage(image).astype(np.float64)
    return ThresholdModel((-300.0 - array.mean()) / array.std())


def _assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    assert a.GetSpacing() == b.GetSpacing()
    assert a.GetOrigin() == b.GetOrigin()
    assert a.GetDirection() == b.GetDirection()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize(
    "direction",
    [(1, 0, 0, 0, 1, 0, 0, 0, 1), (0, -1, 0, 0, 0, 1, -1, 0, 0)],
    ids=["lps-identity", "permuted-and-flipped"],
)
def test_labels_land_on_the_object_in_the_input_grid(direction) -> None:
    image = ct_like_image(size_xyz=(45, 38, 23), spacing_xyz=(1.2, 1.6, 4.0), direction=direction)
    labels = segment_image(image, model=_midpoint_model(image), settings=SMALL)
    _assert_same_geometry(labels, image)
    assert labels.GetPixelID() == sitk.sitkUInt8
    truth = sitk.GetArrayFromImage(image) > 0
    assert _dice(sitk.GetArrayFromImage(labels) == 1, truth) > 0.9


def test_mirror_tta_of_a_pointwise_model_changes_nothing() -> None:
    image = ct_like_image(size_xyz=(30, 30, 20), spacing_xyz=(2.0, 2.0, 3.0))
    plain = segment_image(image, model=ThresholdModel(), settings=SMALL)
    tta = InferenceSettings(patch_size=(32, 32, 32), target_spacing_mm=(3.0, 3.0, 3.0), device="cpu", mirror_tta=True)
    assert np.array_equal(sitk.GetArrayFromImage(plain), sitk.GetArrayFromImage(segment_image(image, model=ThresholdModel(), settings=tta)))


def test_random_small_stunet_runs_on_a_volume_that_is_not_a_multiple_of_the_patch() -> None:
    image = ct_like_image(size_xyz=(41, 29, 13), spacing_xyz=(2.5, 2.5, 5.0), origin=(3.0, -2.0, 100.0))
    labels = segment_image(image, model=random_stunet(size="small", seed=0), settings=SMALL)
    _assert_same_geometry(labels, image)
    values = sitk.GetArrayFromImage(labels)
    assert values.dtype == np.uint8 and values.max() <= 104


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"patch_size": (32, 32, 16)}, "multiples"),
        ({"step_fraction": 0.0}, "step fraction"),
        ({"target_spacing_mm": (1.5, 0.0, 1.5)}, "target spacing"),
        ({"pipeline": "nnunet-v3"}, "pipeline"),
    ],
)
def test_settings_reject_values_the_network_cannot_use(kwargs, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        InferenceSettings(**kwargs)


def test_preprocessing_crops_then_normalises_where_each_nnunet_version_does() -> None:
    """v1 takes the z-score of the resampled volume, v2 of the original one; both crop to the non-zero box first."""
    rng = np.random.default_rng(5)
    array = np.zeros((12, 30, 28), dtype=np.float32)
    array[2:11, 4:27, 3:25] = rng.normal(100, 50, size=(9, 23, 22))
    spacing = (3.0, 0.9, 0.9)  # anisotropic: z resampled apart, order 0
    box = (slice(2, 11), slice(4, 27), slice(3, 25))
    shape = resampled_shape(shape=(9, 23, 22), spacing_mm=spacing, target_spacing_mm=(1.5,) * 3)
    for pipeline in PIPELINES:
        settings = InferenceSettings(patch_size=(32, 32, 32), device="cpu", pipeline=pipeline)
        got_box, work = preprocess(array, spacing_mm=spacing, settings=settings)
        assert got_box == box and work.shape == shape and work.dtype == np.float32
        cropped = array[box]
        if pipeline == "nnunet-v1":
            resampled = resample_image(cropped, shape=shape, axis=0)
            want = (resampled - resampled.mean()) / (resampled.std() + 1e-8)
        else:
            normalised = (cropped - cropped.mean()) / cropped.std()
            want = resample_image(normalised, shape=shape, axis=0)
        np.testing.assert_allclose(work, want, rtol=1e-4, atol=1e-4)


def test_voxels_outside_the_nonzero_box_are_background() -> None:
    array = np.zeros((10, 20, 20), dtype=np.float32)
    array[3:8, 5:15, 6:16] = np.random.default_rng(0).normal(0, 1, size=(5, 10, 10))
    settings = InferenceSettings(patch_size=(32, 32, 32), target_spacing_mm=(3.0, 3.0, 3.0), device="cpu")
    labels = segment_array(
        array, spacing_mm=(3.0, 3.0, 3.0), predict=tile_predictor(ThresholdModel(-1e9), device=torch.device("cpu"), settings=settings),
        num_classes=2, settings=settings, device=torch.device("cpu"),
    )
    assert labels[3:8, 5:15, 6:16].all()  # inside the box: everything above the threshold
    outside = np.ones_like(labels, dtype=bool)
    outside[3:8, 5:15, 6:16] = False
    assert not labels[outside].any()


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_v1_averages_softmax_and_v2_logits(pipeline: str) -> None:
    settings = InferenceSettings(patch_size=(32, 32, 32), device="cpu", pipeline=pipeline, mirror_tta=True)
    tile = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    out = tile_predictor(ThresholdModel(0.5), device=torch.device("cpu"), settings=settings)(tile)
    logits = ThresholdModel(0.5)(tile)
    want = torch.softmax(logits, dim=1) if pipeline == "nnunet-v1" else logits
    torch.testing.assert_close(out, want)
