"""One image in, one label image out, as nnU-Net runs the TotalSegmentator plan (v1, Task101).

Pipeline (``pipeline="nnunet-v1"``, the default, is what nnU-Net v1 does with the official
``.model`` checkpoints): canonical RAS voxel order (as TotalSegmentator feeds nnU-Net) ->
crop to the non-zero bounding box -> 1.5 mm, order-3 spline with the separate-z rule ->
per-image z-score -> 128^3 sliding window, step 0.5, Gaussian weighting, optional mirror
TTA, fp16 autocast on GPU; the tiles' **softmax** is averaged -> probabilities back to the
cropped grid (order 1, order 0 along a separate axis) -> argmax -> un-crop -> the input's
own voxel order and geometry.

``pipeline="nnunet-v2"`` does what nnU-Net v2's predictor does instead: the z-score is taken
*before* resampling (statistics of the original grid) and **logits** are averaged and
resampled. Every other step is the same in both.

Memory stays bounded (no full-resolution 105-channel volume exists): see
:mod:`stunet.sliding_window` and :mod:`stunet.resample`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import torch

from .errors import ConfigError, InputError
from .model import PATCH_DIVISOR
from .orientation import AxisTransform, to_ras
from .resample import iter_label_slabs, nonzero_bbox, resample_image, resampled_shape, separate_axis
from .sliding_window import TilePredictor, iter_logit_slabs

#: nnU-Net v1 divides by ``std + 1e-8`` (``GenericPreprocessor``), v2 by ``max(std, 1e-8)`` (``ZScoreNormalization``).
NORMALIZATION_EPS = 1e-8
PIPELINES = ("nnunet-v1", "nnunet-v2")


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """How to run the network; the defaults are the TotalSegmentator plan's.

    ``half_precision_buffer`` accumulates the tile row of logits in float16, as
    nnU-Net v2 does: 2 GB instead of 4 GB for a 512x512 CT, which keeps a CPU run
    of the small model under the harness's default 8 GB limit.
    """

    target_spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    patch_size: tuple[int, int, int] = (128, 128, 128)
    step_fraction: float = 0.5
    mirror_tta: bool = False
    mixed_precision: bool = True
    reorient_to_ras: bool = True
    half_precision_buffer: bool = True
    device: str | None = None
    slab_depth: int = 8
    out_chunk: int = 4
    mirror_axes: tuple[int, ...] = field(default=(0, 1, 2))
    pipeline: str = "nnunet-v1"

    def __post_init__(self) -> None:
        if self.pipeline not in PIPELINES:
            raise ConfigError(f"pipeline {self.pipeline!r} is not one of {', '.join(PIPELINES)}")
        if len(self.patch_size) != 3 or any(p % d for p, d in zip(self.patch_size, PATCH_DIVISOR)) or min(self.patch_size) < 1:
            raise ConfigError(f"patch size {self.patch_size} must be 3 positive multiples of {PATCH_DIVISOR} (z, y, x)")
        if not 0 < self.step_fraction <= 1:
            raise ConfigError(f"step fraction must be in (0, 1], got {self.step_fraction}")
        if len(self.target_spacing_mm) != 3 or min(self.target_spacing_mm) <= 0:
            raise ConfigError(f"target spacing must be 3 positive numbers, got {self.target_spacing_mm}")
        if self.slab_depth < 1 or self.out_chunk < 1:
            raise ConfigError("slab_depth and out_chunk must be at least 1")
        if not set(self.mirror_axes) <= {0, 1, 2}:
            raise ConfigError(f"mirror axes must be among 0, 1, 2, got {self.mirror_axes}")

    def resolve_device(self) -> torch.device:
        """The requested device, else CUDA when present, else CPU."""
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tile_predictor(
    model: Callable[[torch.Tensor], torch.Tensor], *, device: torch.device, settings: InferenceSettings
) -> TilePredictor:
    """Wrap the network: autocast on CUDA, softmax (nnU-Net v1) or logits (v2), optional mirror TTA, float32 out.

    Mirror TTA is off by default: TotalSegmentator's models were trained without
    mirroring because flips swap left and right organs. With TTA the passes' outputs
    (softmax or logits, as the pipeline says) are averaged, as nnU-Net does.
    """
    softmax = settings.pipeline == "nnunet-v1"
    autocast = settings.mixed_precision and device.type == "cuda"
    flip_sets: list[tuple[int, ...]] = [()]
    if settings.mirror_tta:
        axes = [a + 2 for a in settings.mirror_axes]
        flip_sets = [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]

    def one_pass(tile: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        out = (model(torch.flip(tile, dims)) if dims else model(tile)).float()
        if softmax:
            out = torch.softmax(out, dim=1)
        return torch.flip(out, dims) if dims else out

    def predict(tile: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=autocast):
            total = one_pass(tile, flip_sets[0])
            for dims in flip_sets[1:]:
                total += one_pass(tile, dims)
        return total / len(flip_sets) if len(flip_sets) > 1 else total

    return predict


def zscore(volume: np.ndarray, *, pipeline: str) -> np.ndarray:
    """Per-image z-score over the whole (cropped) volume in float32, as the plan does for every modality.

    nnU-Net v1's ``GenericPreprocessor`` divides by ``std + 1e-8``; v2's ``ZScoreNormalization``
    by ``max(std, 1e-8)``. Statistics are numpy's float32 ``mean``/``std``, as in both.
    """
    volume = volume.astype(np.float32, copy=False)
    mean, std = volume.mean(), volume.std()
    scale = std + NORMALIZATION_EPS if pipeline == "nnunet-v1" else max(std, NORMALIZATION_EPS)
    return ((volume - mean) / scale).astype(np.float32, copy=False)


def preprocess(
    array: np.ndarray, *, spacing_mm: tuple[float, float, float], settings: InferenceSettings
) -> tuple[tuple[slice, ...], np.ndarray]:
    """nnU-Net's preprocessing: crop to the non-zero box, resample (order 3, separate-z rule), z-score.

    Returns the crop box and the network-grid volume. v1 normalises after resampling,
    v2 before (so v2's statistics are those of the original grid).
    """
    box = nonzero_bbox(array)
    cropped = np.asarray(array[box], dtype=np.float32)
    work_shape = resampled_shape(shape=cropped.shape, spacing_mm=spacing_mm, target_spacing_mm=settings.target_spacing_mm)
    axis = separate_axis(spacing_mm, settings.target_spacing_mm)
    if settings.pipeline == "nnunet-v2":
        return box, resample_image(zscore(cropped, pipeline=settings.pipeline), shape=work_shape, axis=axis)
    return box, zscore(resample_image(cropped, shape=work_shape, axis=axis), pipeline=settings.pipeline)


def segment_array(
    array: np.ndarray,
    *,
    spacing_mm: tuple[float, float, float],
    predict: TilePredictor,
    num_classes: int,
    settings: InferenceSettings,
    device: torch.device,
) -> np.ndarray:
    """Labels (``uint8``, same shape) of a ``(z, y, x)`` array with spacing in the same axis order.

    Voxels outside the non-zero box are background (label 0), as in nnU-Net's export.
    """
    if array.ndim != 3:
        raise InputError(f"expected a 3-D image, got an array of shape {array.shape}")
    if num_classes > 256:
        raise ConfigError(f"{num_classes} classes do not fit a uint8 label image")
    box, work = preprocess(array, spacing_mm=spacing_mm, settings=settings)
    volume = torch.from_numpy(work).to(device)
    del work
    slabs = iter_logit_slabs(
        volume,
        predict,
        num_classes=num_classes,
        patch_size=settings.patch_size,
        step_fraction=settings.step_fraction,
        slab_depth=settings.slab_depth,
        buffer_dtype=torch.float16 if settings.half_precision_buffer else torch.float32,
    )
    # The export's separate axis: v1 asks the original spacing first, v2 the network's.
    target = settings.target_spacing_mm
    nearest_axis = separate_axis(spacing_mm, target) if settings.pipeline == "nnunet-v1" else separate_axis(target, spacing_mm)
    labels = np.zeros(array.shape, dtype=np.uint8)
    inside = labels[box]
    for k0, chunk in iter_label_slabs(
        slabs, source_depth=volume.shape[0], out_shape=inside.shape, nearest_axis=nearest_axis, out_chunk=settings.out_chunk
    ):
        inside[k0 : k0 + chunk.shape[0]] = chunk.cpu().numpy()
    return labels


def segment_image(
    image: sitk.Image,
    *,
    model: torch.nn.Module,
    settings: InferenceSettings,
) -> sitk.Image:
    """The label image of ``image``: uint8, single channel, the input's exact geometry."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"expected a 3-D single-channel image, got {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} components"
        )
    device = settings.resolve_device()
    model = model.to(device).eval()
    transform = to_ras(image.GetDirection()) if settings.reorient_to_ras else AxisTransform(order=(0, 1, 2), flips=())
    array = sitk.GetArrayViewFromImage(image)
    spacing_zyx = tuple(float(s) for s in reversed(image.GetSpacing()))
    with torch.inference_mode():
        labels = segment_array(
            transform.apply(array),
            spacing_mm=transform.spacing(spacing_zyx),
            predict=tile_predictor(model, device=device, settings=settings),
            num_classes=model.config.num_classes,
            settings=settings,
            device=device,
        )
    out = sitk.GetImageFromArray(np.ascontiguousarray(transform.invert(labels)))
    out.CopyInformation(image)
    return out
