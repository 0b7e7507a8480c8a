"""Synthetic stand-ins for what the tests cannot ship: official checkpoints and CT volumes.

Checkpoints have random weights but the real structure: a v1 ``.model`` holds
optimizer state, an AMP grad scaler and numpy-scalar training curves pickled under
the numpy 1.x name ``numpy.core.multiarray.scalar``, as the 2023 releases do.
"""

from __future__ import annotations

import copy
import pickle
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch


class _Numpy1Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes numpy scalars the way numpy 1.x did (``numpy.core.multiarray.scalar``)."""

    def save_global(self, obj, name=None):  # noqa: ANN001, ANN201 - pickle's signature
        if obj is np._core.multiarray.scalar:  # type: ignore[attr-defined]
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\nscalar\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


_NUMPY1_PICKLE = types.SimpleNamespace(Pickler=_Numpy1Pickler, __name__="numpy1_pickle")


def _optimizer_state(model: torch.nn.Module) -> dict:
    """SGD state after one step: momentum buffers for every parameter, like a trained file.

    The step runs on a copy: weight decay would otherwise change the caller's weights.
    """
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p in model.parameters():
        p.grad = None
    return optimizer.state_dict()


def write_v1_checkpoint(path: Path, model: torch.nn.Module, *, prefix: str = "", numpy1_names: bool = True) -> Path:
    """An nnU-Net v1 ``.model`` file: weights under ``state_dict`` plus trainer state."""
    losses = [np.float32(1.0 / (i + 1)) for i in range(5)]
    payload = {
        "epoch": 4000,
        "state_dict": OrderedDict((prefix + k, v.detach().clone()) for k, v in model.state_dict().items()),
        "optimizer_state_dict": _optimizer_state(model),
        "lr_scheduler_state_dict": None,
        "plot_stuff": (losses, losses[::-1], losses, [np.float64(0.5 + i / 10) for i in range(5)]),
        "best_stuff": (3, np.float32(0.25), np.float64(0.8)),
        "amp_grad_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 17},
    }
    if numpy1_names:
        torch.save(payload, path, pickle_module=_NUMPY1_PICKLE)
    else:
        torch.save(payload, path)
    return path


def write_v2_checkpoint(path: Path, model: torch.nn.Module) -> Path:
    """An nnU-Net v2 ``.pth`` file: weights under ``network_weights`` plus trainer state."""
    payload = {
        "network_weights": OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items()),
        "optimizer_state": _optimizer_state(model),
        "grad_scaler_state": {"scale": 32768.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000, "_growth_tracker": 3},
        "logging": {
            "mean_fg_dice": [np.float64(0.7), np.float64(0.8)],
            "ema_fg_dice": [np.float64(0.7), np.float64(0.71)],
            "train_losses": [np.float32(-0.5), np.float32(-0.6)],
            "epoch_start_timestamps": [1.0, 2.0],
        },
        "_best_ema": np.float64(0.71),
        "current_epoch": 2,
        "init_args": {
            "plans": {"dataset_name": "Dataset101_TotalSegmentator", "configurations": {"3d_fullres": {"spacing": [1.5, 1.5, 1.5]}}},
            "configuration": "3d_fullres",
            "fold": 0,
            "dataset_json": {"labels": {"background": 0}},
            "unpack_dataset": True,
            "device": torch.device("cpu"),
        },
        "trainer_name": "STUNetTrainer_small",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(payload, path)
    return path


class Payload:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        import os

        return (os.system, (f"touch {self.marker}",))


def ct_like_image(
    *,
    size_xyz: tuple[int, int, int],
    spacing_xyz: tuple[float, float, float],
    origin: tuple[float, float, float] = (-12.5, 40.0, 7.25),
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
    seed: int = 0,
) -> sitk.Image:
    """A small int16 volume with a bright ellipsoid in noise, and non-trivial geometry.

    The ellipsoid is off-centre along every axis, so a flipped or permuted result
    does not overlap it.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = size_xyz
    z, y, x = np.meshgrid(np.linspace(-1, 1, nz), np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    inside = ((x - 0.35) / 0.55) ** 2 + ((y + 0.3) / 0.5) ** 2 + ((z - 0.25) / 0.6) ** 2 < 1
    array = np.where(inside, 300, -900).astype(np.int16)
    array = array + rng.integers(-40, 40, size=array.shape, dtype=np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image
