"""End-to-end inference keeps the input's geometry and puts labels where the image content is."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

torch = pytest.importorskip("torch")

from stunet.checkpoint import random_stunet
from stunet.errors import ConfigError
from stunet.inference import InferenceSettings, segment_image
from stunet.model import StunetConfig

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
    ],
)
def test_settings_reject_values_the_network_cannot_use(kwargs, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        InferenceSettings(**kwargs)
