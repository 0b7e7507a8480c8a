"""Find, safely unpickle and strictly load official STU-Net checkpoints from a local folder.

Why so careful: a checkpoint is a pickle, and a pickle can run code. Weights come
from whoever uploads a model tarball, so they are read with
``torch.load(weights_only=True)`` and an allow-list of just what nnU-Net files hold
besides tensors: numpy scalars (v1 files log losses as ``np.mean`` results) and
their dtypes. Anything else is refused before it can execute.

Formats:
- nnU-Net v1 ``.model`` (the released ``*_ep4k.model``): ``state_dict`` plus trainer
  state (``optimizer_state_dict``, ``amp_grad_scaler``, ``plot_stuff``, ...).
- nnU-Net v2 ``.pth``: ``network_weights`` plus ``init_args``, ``trainer_name``, ...
- a bare state dict (what ``torch.save(model.state_dict())`` writes).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError
from .model import STUNet, StunetConfig, build_stunet, init_he_, size_config, size_name

CHECKPOINT_SUFFIXES = (".model", ".pth")
#: Prefixes added by DataParallel/DDP (``module.``) and torch.compile (``_orig_mod.``).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _numpy_safe_globals() -> list[Any]:
    """The smallest allow-list nnU-Net checkpoints need beyond torch's defaults.

    Numpy scalars pickle as ``scalar(dtype, bytes)``; the dtype pickles as a call
    of ``numpy.dtype`` followed by a BUILD on its class (``Float32DType``, ...).
    Files written under numpy 1.x name the function ``numpy.core.multiarray.scalar``,
    under numpy 2.x ``numpy._core.multiarray.scalar``: both names map to it. Only
    the dtypes training logs produce (float32/float64 losses and Dice, int64
    epochs) are allowed; none of these can run code.
    """
    scalar = np._core.multiarray.scalar  # type: ignore[attr-defined]
    return [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        type(np.dtype(np.float32)),
        type(np.dtype(np.float64)),
        type(np.dtype(np.int64)),
    ]


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` under the weights-only unpickler and the numpy allow-list, on CPU.

    Zip-format files are memory-mapped, so the optimizer state of a 12 GB ``huge``
    checkpoint is never read into RAM.

    Raises:
        CheckpointError: naming the file, if it is not loadable under that allow-list
            (e.g. a pickle that would call ``os.system``) or is not a torch file at all.
    """
    mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it holds objects outside the weights-only allow-list "
            f"(tensors, plain containers, numbers, numpy scalars), so unpickling it could run code. "
            f"Detail: {_first_line(error)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as error:
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def extract_state_dict(payload: Any, *, path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a v1 (``state_dict``), v2 (``network_weights``) or bare checkpoint.

    Wrapper prefixes (``module.``, ``_orig_mod.``) are stripped so that a checkpoint
    saved from a DataParallel or compiled network still loads strictly.
    """
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"{path}: expected a dict at the top level, found {type(payload).__name__}")
    if "state_dict" in payload:
        weights = payload["state_dict"]
    elif "network_weights" in payload:
        weights = payload["network_weights"]
    elif payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        weights = payload
    else:
        keys = ", ".join(sorted(map(str, payload))[:12])
        raise CheckpointError(
            f"{path}: no network weights found; expected a 'state_dict' (nnU-Net v1 .model) or "
            f"'network_weights' (nnU-Net v2 .pth) entry, top-level keys are: {keys}"
        )
    if not isinstance(weights, Mapping) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: the weights entry is not a mapping of names to tensors")
    return {_strip_prefixes(str(k)): v for k, v in weights.items()}


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def infer_config(state_dict: Mapping[str, torch.Tensor], *, path: Path) -> StunetConfig:
    """Read widths, blocks per stage, classes and input channels off the weights' shapes."""
    try:
        dims, depth = [], []
        for stage in range(6):
            prefix = f"conv_blocks_context.{stage}."
            blocks = {int(k[len(prefix) :].split(".")[0]) for k in state_dict if k.startswith(prefix)}
            dims.append(int(state_dict[f"{prefix}0.conv1.weight"].shape[0]))
            depth.append(len(blocks))
        head = state_dict["seg_outputs.4.weight"]
        stem = state_dict["conv_blocks_context.0.0.conv1.weight"]
        return StunetConfig(
            dims=tuple(dims), depth=tuple(depth), num_classes=int(head.shape[0]), in_channels=int(stem.shape[1])
        )
    except KeyError as error:
        raise CheckpointError(
            f"{path}: these weights are not an STU-Net: key {error} is missing (the network's widths are read from it)"
        ) from None
    except (ValueError, IndexError) as error:
        raise CheckpointError(f"{path}: these weights are not an STU-Net (cannot read its widths: {error})") from None


def check_layout(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, path: Path) -> None:
    """Strict key and shape comparison, with an error that lists every difference.

    ``load_state_dict(strict=True)`` would stop at the first shape mismatch and
    bury the rest; an organizer fixing a wrong upload wants the full picture.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    misshaped = [f"{k}: checkpoint {got[k]} vs network {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    if missing or unexpected or misshaped:
        lines = [f"{path} does not fit the STU-Net layout:"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", misshaped)):
            if items:
                shown = "; ".join(items[:20]) + (f"; ... ({len(items) - 20} more)" if len(items) > 20 else "")
                lines.append(f"  {label} ({len(items)}): {shown}")
        raise CheckpointError("\n".join(lines))


@dataclass(frozen=True, kw_only=True)
class LoadedCheckpoint:
    """A ready network and where it came from (for logs)."""

    model: STUNet
    path: Path
    size: str | None
    format: str


def load_stunet(path: Path, *, size: str | None = None) -> LoadedCheckpoint:
    """Build the network the checkpoint describes and load its weights strictly.

    The size is read off the weights, so one container serves all four sizes;
    passing ``size`` checks the checkpoint against that size instead.
    """
    payload = safe_torch_load(path)
    state_dict = extract_state_dict(payload, path=path)
    fmt = "v1" if "state_dict" in payload else "v2" if "network_weights" in payload else "state_dict"
    inferred = infer_config(state_dict, path=path)
    config = inferred if size is None else size_config(size, num_classes=inferred.num_classes, in_channels=inferred.in_channels)
    model = build_stunet(config, device="meta")
    check_layout(model, state_dict, path=path)
    # Built on meta and assigned: no time spent on a random init of 1.4 B parameters,
    # and no second copy of the weights in memory.
    model.load_state_dict({k: v.float().contiguous() for k, v in state_dict.items()}, strict=True, assign=True)
    return LoadedCheckpoint(model=model.eval(), path=path, size=size_name(config), format=fmt)


def find_checkpoint(model_dir: Path, *, name: str | None = None) -> Path:
    """The one checkpoint in ``model_dir`` (searched recursively), or the one ``name`` points at.

    ``.model.pkl`` plans files beside a ``.model`` are ignored: the plan is fixed.

    Raises:
        CheckpointError: if the folder is missing, holds no checkpoint, or holds several
            and ``name`` does not say which.
    """
    if name:
        candidate = Path(name) if os.path.isabs(name) else model_dir / name
        if not candidate.is_file():
            raise CheckpointError(f"checkpoint {candidate} named by STUNET_CHECKPOINT/--checkpoint does not exist")
        return candidate
    if not model_dir.is_dir():
        raise CheckpointError(
            f"model folder {model_dir} does not exist: mount the official weights there "
            f"(docker run -v <folder with small_ep4k.model>:/opt/ml/model:ro)"
        )
    found = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
    if not found:
        present = ", ".join(sorted(p.name for p in model_dir.iterdir())[:10]) or "nothing"
        raise CheckpointError(f"no *.model or *.pth checkpoint in {model_dir} (it holds: {present})")
    if len(found) > 1:
        listed = ", ".join(str(p.relative_to(model_dir)) for p in found)
        raise CheckpointError(
            f"several checkpoints in {model_dir} ({listed}); name one with STUNET_CHECKPOINT or --checkpoint"
        )
    return found[0]


def random_stunet(*, size: str = "small", seed: int = 0, num_classes: int = 105) -> STUNet:
    """A network with seeded He-initialised weights, for tests and benchmarks only."""
    return init_he_(build_stunet(size_config(size, num_classes=num_classes)), seed=seed).eval()
