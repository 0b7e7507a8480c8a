"""Run configuration of the container, from environment variables overridden by flags.

Why environment variables: Grand-Challenge and FLARE start the image with a fixed
command, so everything a harness or a test must change (paths, protocol, patch
size) has to be reachable without editing the command line.

Variables (flags of the same meaning win over them):

- ``AEVAL_PROTOCOL``: ``gc`` or ``flare``; default ``gc`` if ``<input dir>/inputs.json`` exists, else ``flare``.
- ``AEVAL_INPUT_DIR`` / ``AEVAL_OUTPUT_DIR``: default ``/input`` and ``/output`` (gc),
  ``/workspace/inputs`` and ``/workspace/outputs`` (flare).
- ``AEVAL_OUTPUT_RELATIVE_PATH``: gc output folder, default ``images/abdominal-organ-segmentation``.
- ``STUNET_MODEL_DIR`` (default ``/opt/ml/model``), ``STUNET_CHECKPOINT`` (file name or path
  when the folder holds several), ``STUNET_SIZE`` (check the checkpoint is that size;
  by default the size is read off the weights).
- ``STUNET_RANDOM_WEIGHTS=1``: tests only; seeded random ``small`` weights when no checkpoint exists.
- ``STUNET_PATCH_SIZE`` (``128`` or ``z,y,x``), ``STUNET_STEP``, ``STUNET_TTA``,
  ``STUNET_TARGET_SPACING_MM``, ``STUNET_DEVICE``, ``STUNET_MIXED_PRECISION``, ``STUNET_REORIENT``,
  ``STUNET_HALF_BUFFER`` (accumulate tile logits in float16, default 1), ``STUNET_PIPELINE``
  (``nnunet-v1``, the default and what the official checkpoints were evaluated with, or ``nnunet-v2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .inference import InferenceSettings
from .model import SIZES

PROTOCOLS = ("gc", "flare")
DEFAULT_DIRS = {"gc": (Path("/input"), Path("/output")), "flare": (Path("/workspace/inputs"), Path("/workspace/outputs"))}
DEFAULT_OUTPUT_RELATIVE_PATH = "images/abdominal-organ-segmentation"
DEFAULT_MODEL_DIR = Path("/opt/ml/model")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything one container run needs, resolved and validated."""

    protocol: str
    input_dir: Path
    output_dir: Path
    output_relative_path: str
    model_dir: Path
    checkpoint: str | None
    size: str | None
    random_weights: bool
    settings: InferenceSettings


def parse_bool(value: str, *, name: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (case-insensitive)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use 1 or 0)")


def parse_triple(value: str, *, name: str, kind: type) -> tuple:
    """``"128"`` -> ``(128, 128, 128)``; ``"32,32,64"`` -> ``(32, 32, 64)`` (array order z, y, x)."""
    try:
        items = tuple(kind(v) for v in value.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not one or three numbers") from None
    if len(items) == 1:
        items = items * 3
    if len(items) != 3:
        raise ConfigError(f"{name}={value!r} must be one or three numbers")
    return items


def resolve(options: Mapping[str, str | None], environ: Mapping[str, str]) -> RunConfig:
    """Merge flag values (``options``, None when not given) over ``environ`` and validate."""

    def pick(option: str, variable: str) -> str | None:
        value = options.get(option)
        return value if value is not None else environ.get(variable)

    input_override, output_override = pick("input_dir", "AEVAL_INPUT_DIR"), pick("output_dir", "AEVAL_OUTPUT_DIR")
    protocol = (pick("protocol", "AEVAL_PROTOCOL") or "").strip().lower()
    if not protocol:
        gc_input = Path(input_override) if input_override else DEFAULT_DIRS["gc"][0]
        protocol = "gc" if (gc_input / "inputs.json").is_file() else "flare"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    default_in, default_out = DEFAULT_DIRS[protocol]

    size = pick("size", "STUNET_SIZE") or None
    if size is not None and size not in SIZES:
        raise ConfigError(f"STUNET_SIZE={size!r} is not one of {', '.join(SIZES)}")

    settings_kwargs: dict = {}
    if value := pick("patch_size", "STUNET_PATCH_SIZE"):
        settings_kwargs["patch_size"] = parse_triple(value, name="STUNET_PATCH_SIZE", kind=int)
    if value := pick("target_spacing_mm", "STUNET_TARGET_SPACING_MM"):
        settings_kwargs["target_spacing_mm"] = parse_triple(value, name="STUNET_TARGET_SPACING_MM", kind=float)
    if value := pick("step", "STUNET_STEP"):
        try:
            settings_kwargs["step_fraction"] = float(value)
        except ValueError:
            raise ConfigError(f"STUNET_STEP={value!r} is not a number") from None
    for option, variable, key in (
        ("tta", "STUNET_TTA", "mirror_tta"),
        ("mixed_precision", "STUNET_MIXED_PRECISION", "mixed_precision"),
        ("reorient", "STUNET_REORIENT", "reorient_to_ras"),
        ("half_buffer", "STUNET_HALF_BUFFER", "half_precision_buffer"),
    ):
        if (value := pick(option, variable)) is not None:
            settings_kwargs[key] = parse_bool(value, name=variable)
    if value := pick("pipeline", "STUNET_PIPELINE"):
        settings_kwargs["pipeline"] = value.strip().lower()
    if value := pick("device", "STUNET_DEVICE"):
        settings_kwargs["device"] = value

    return RunConfig(
        protocol=protocol,
        input_dir=Path(input_override) if input_override else default_in,
        output_dir=Path(output_override) if output_override else default_out,
        output_relative_path=(pick("output_relative_path", "AEVAL_OUTPUT_RELATIVE_PATH") or DEFAULT_OUTPUT_RELATIVE_PATH).strip("/"),
        model_dir=Path(pick("model_dir", "STUNET_MODEL_DIR") or DEFAULT_MODEL_DIR),
        checkpoint=pick("checkpoint", "STUNET_CHECKPOINT") or None,
        size=size,
        random_weights=parse_bool(pick("random_weights", "STUNET_RANDOM_WEIGHTS") or "0", name="STUNET_RANDOM_WEIGHTS"),
        settings=InferenceSettings(**settings_kwargs),
    )
