"""Per-organ segmentation metrics of the A-Eval benchmark: Dice, NSD, HD95 and ASSD.

numpy arrays in, plain Python numbers out, no file IO. Spacing is always in ARRAY axis order.

High level: :func:`score_case` scores every organ (:class:`OrganSpec`) of a ground-truth /
prediction label-volume pair, with the empty-organ convention chosen by :class:`EmptyPolicy`.

Low level: :func:`dice` on two masks; :func:`surface_distances` computes the surfels of two masks
and their distances once, and :func:`nsd`, :func:`hd95`, :func:`assd` derive from it. Surface
definitions (surfels weighted by area, distances between surfel corners, the percentile rule)
match DeepMind's ``surface-distance`` package; tests check equality to 1e-6.

Empty-organ conventions (emptiness by voxel count, never by array size):

* absent from both ground truth and prediction: ``EmptyPolicy.AEVAL`` (default) gives
  Dice = NSD = 1.0 and HD95 = ASSD = 0.0; ``EmptyPolicy.NNUNET`` gives NaN for every metric
  (callers nan-mean);
* absent from exactly one: under both policies Dice = NSD = 0.0 and HD95 = ASSD = the physical
  diagonal of the volume in mm (``sqrt(sum((n_i * s_i)**2))``), a finite worst case so that no
  Infinity ever reaches JSON.
"""

import importlib

#: Where each public name lives. Imported on first use (PEP 562): a process that only needs a
#: metric's name or an option (the harness's driver, its CLI) does not pay for the scoring
#: kernels' compiler (numba: 0.3-0.5 s per process).
_EXPORTS = {
    "score_case": "metrics.case",
    "EmptyPolicy": "metrics.options",
    "OrganSpec": "metrics.options",
    "dice": "metrics.overlap",
    "SurfaceDistances": "metrics.surface_metrics",
    "assd": "metrics.surface_metrics",
    "hd95": "metrics.surface_metrics",
    "nsd": "metrics.surface_metrics",
    "surface_distances": "metrics.surface_metrics",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [
    "EmptyPolicy",
    "OrganSpec",
    "SurfaceDistances",
    "assd",
    "dice",
    "hd95",
    "nsd",
    "score_case",
    "surface_distances",
]
