"""Checkpoints of both nnU-Net formats load strictly and safely; unsafe or wrong ones are refused."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from stunet.checkpoint import find_checkpoint, load_stunet, random_stunet, safe_torch_load
from stunet.errors import CheckpointError

from .synthetic import Payload, write_v1_checkpoint, write_v2_checkpoint


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    return random_stunet(size="small", seed=3)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_v1_model_file_with_trainer_state_and_numpy1_scalars_round_trips(tmp_path: Path, small_model) -> None:
    path = write_v1_checkpoint(tmp_path / "small_ep4k.model", small_model)
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"numpy.core.multiarray\nscalar" in pickled  # the numpy 1.x name real 2023 files use
    loaded = load_stunet(path)
    assert (loaded.size, loaded.format) == ("small", "v1")
    _assert_same_weights(loaded.model, small_model)
    payload = safe_torch_load(path)
    assert float(payload["plot_stuff"][0][1]) == pytest.approx(0.5)
    assert "momentum_buffer" in payload["optimizer_state_dict"]["state"][0]


def test_v1_file_with_dataparallel_prefix_loads(tmp_path: Path, small_model) -> None:
    path = write_v1_checkpoint(tmp_path / "ddp.model", small_model, prefix="module.", numpy1_names=False)
    _assert_same_weights(load_stunet(path).model, small_model)


def test_v2_pth_round_trips(tmp_path: Path, small_model) -> None:
    path = write_v2_checkpoint(tmp_path / "checkpoint_final.pth", small_model)
    loaded = load_stunet(path)
    assert (loaded.size, loaded.format) == ("small", "v2")
    _assert_same_weights(loaded.model, small_model)


def test_loaded_network_predicts_like_the_original(tmp_path: Path, small_model) -> None:
    loaded = load_stunet(write_v2_checkpoint(tmp_path / "w.pth", small_model)).model
    x = torch.randn(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(loaded(x), small_model(x))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    zipped = tmp_path / "evil.model"
    torch.save({"state_dict": {}, "epoch": Payload(marker)}, zipped)
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    for path in (zipped, legacy):
        with pytest.raises(CheckpointError, match=str(path.name)) as info:
            load_stunet(path)
        assert "refusing to load" in str(info.value)
    assert not marker.exists()


def test_garbage_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "truncated.model"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated.model"):
        load_stunet(path)


def test_mismatched_weights_list_missing_unexpected_and_misshaped_keys(tmp_path: Path, small_model) -> None:
    weights = dict(small_model.state_dict())
    weights.pop("seg_outputs.0.bias")
    weights["extra.weight"] = torch.zeros(1)
    weights["conv_blocks_context.1.0.conv2.weight"] = torch.zeros(32, 32, 1, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save({"network_weights": weights}, path)
    with pytest.raises(CheckpointError) as info:
        load_stunet(path)
    message = str(info.value)
    assert "bad.pth" in message
    assert "missing keys (1): seg_outputs.0.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "conv_blocks_context.1.0.conv2.weight: checkpoint (32, 32, 1, 1, 1) vs network (32, 32, 3, 3, 3)" in message


def test_requested_size_must_match_the_checkpoint(tmp_path: Path, small_model) -> None:
    path = write_v2_checkpoint(tmp_path / "small.pth", small_model)
    with pytest.raises(CheckpointError, match="mis-shaped keys"):
        load_stunet(path, size="base")


def test_find_checkpoint_ignores_plans_and_needs_exactly_one(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "absent")
    (tmp_path / "small_ep4k.model.pkl").write_bytes(b"plans")
    with pytest.raises(CheckpointError, match="no \\*.model or \\*.pth"):
        find_checkpoint(tmp_path)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "small_ep4k.model").write_bytes(b"x")
    assert find_checkpoint(tmp_path) == tmp_path / "nested" / "small_ep4k.model"
    (tmp_path / "checkpoint_final.pth").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="several checkpoints"):
        find_checkpoint(tmp_path)
    assert find_checkpoint(tmp_path, name="checkpoint_final.pth") == tmp_path / "checkpoint_final.pth"
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path, name="other.pth")


def test_one_renamed_key_is_refused_naming_both_names(tmp_path: Path, small_model) -> None:
    """A single renamed tensor (same shape, same count) must not load silently."""
    weights = dict(small_model.state_dict())
    weights["conv_blocks_context.2.0.conv2.weights"] = weights.pop("conv_blocks_context.2.0.conv2.weight")
    original = safe_torch_load(write_v1_checkpoint(tmp_path / "small_ep4k.model", small_model))
    path = tmp_path / "renamed.model"  # a new file: the original is memory-mapped
    torch.save({**original, "state_dict": weights}, path)
    with pytest.raises(CheckpointError) as info:
        load_stunet(path)
    message = str(info.value)
    assert "renamed.model" in message
    assert "missing keys (1): conv_blocks_context.2.0.conv2.weight" in message
    assert "unexpected keys (1): conv_blocks_context.2.0.conv2.weights" in message
    assert "mis-shaped" not in message


def test_a_renamed_key_the_size_is_read_from_is_named_too(tmp_path: Path, small_model) -> None:
    weights = dict(small_model.state_dict())
    weights["conv_blocks_context.2.0.conv1.weights"] = weights.pop("conv_blocks_context.2.0.conv1.weight")
    path = tmp_path / "renamed_width.pth"
    torch.save({"network_weights": weights}, path)
    with pytest.raises(CheckpointError, match=r"renamed_width\.pth.*'conv_blocks_context\.2\.0\.conv1\.weight' is missing"):
        load_stunet(path)


def test_one_tensor_of_the_wrong_shape_is_refused_naming_it(tmp_path: Path, small_model) -> None:
    """Every key present, one tensor with one class too few: refused, with both shapes."""
    weights = dict(small_model.state_dict())
    weights["seg_outputs.4.bias"] = weights["seg_outputs.4.bias"][:-1].clone()
    path = tmp_path / "shape.model"
    torch.save({"state_dict": weights}, path)
    with pytest.raises(CheckpointError) as info:
        load_stunet(path)
    message = str(info.value)
    assert "shape.model" in message
    assert "mis-shaped keys (1): seg_outputs.4.bias: checkpoint (104,) vs network (105,)" in message
    assert "missing keys" not in message and "unexpected keys" not in message
