"""Environment and flags resolve to one validated run configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")  # the stunet package needs torch

from stunet.config import resolve
from stunet.errors import ConfigError


def test_protocol_defaults_to_gc_only_when_inputs_json_exists(tmp_path: Path) -> None:
    env = {"AEVAL_INPUT_DIR": str(tmp_path)}
    assert resolve({}, env).protocol == "flare"
    (tmp_path / "inputs.json").write_text("[]")
    config = resolve({}, env)
    assert (config.protocol, config.input_dir, config.output_dir) == ("gc", tmp_path, Path("/output"))
    assert config.output_relative_path == "images/abdominal-organ-segmentation"
    assert config.model_dir == Path("/opt/ml/model")


def test_flare_defaults_and_flags_override_environment() -> None:
    config = resolve({"protocol": "flare", "patch_size": "32,32,64"}, {"AEVAL_PROTOCOL": "gc", "STUNET_PATCH_SIZE": "64"})
    assert (config.protocol, config.input_dir, config.output_dir) == ("flare", Path("/workspace/inputs"), Path("/workspace/outputs"))
    assert config.settings.patch_size == (32, 32, 64)


def test_inference_settings_from_environment() -> None:
    env = {"STUNET_PATCH_SIZE": "64", "STUNET_STEP": "0.25", "STUNET_TTA": "yes", "STUNET_REORIENT": "0", "STUNET_DEVICE": "cpu", "STUNET_HALF_BUFFER": "off", "STUNET_PIPELINE": "nnunet-V2"}
    settings = resolve({"protocol": "gc"}, env).settings
    assert settings.patch_size == (64, 64, 64) and settings.step_fraction == 0.25
    assert settings.mirror_tta and not settings.reorient_to_ras and settings.device == "cpu"
    assert not settings.half_precision_buffer and settings.pipeline == "nnunet-v2"
    defaults = resolve({"protocol": "gc"}, {}).settings
    assert defaults.patch_size == (128, 128, 128) and defaults.half_precision_buffer and not defaults.mirror_tta
    assert defaults.pipeline == "nnunet-v1"


@pytest.mark.parametrize(
    "env,match",
    [
        ({"AEVAL_PROTOCOL": "docker"}, "protocol"),
        ({"STUNET_SIZE": "tiny"}, "STUNET_SIZE"),
        ({"STUNET_TTA": "maybe"}, "STUNET_TTA"),
        ({"STUNET_PATCH_SIZE": "32,32"}, "STUNET_PATCH_SIZE"),
        ({"STUNET_PATCH_SIZE": "48"}, "multiples"),
        ({"STUNET_STEP": "half"}, "STUNET_STEP"),
        ({"STUNET_PIPELINE": "nnunet"}, "pipeline"),
    ],
)
def test_bad_values_are_named(env: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve({"protocol": None}, {"AEVAL_PROTOCOL": "gc", **env})
