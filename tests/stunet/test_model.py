"""The network's state dict must equal the official checkpoints' layout, for every size."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stunet.model import SIZES, StunetConfig, build_stunet, init_he_, parameter_count, size_config, size_name


@pytest.mark.parametrize("name", list(SIZES))
def test_state_dict_keys_order_and_shapes_equal_the_official_layout(layout: dict, name: str) -> None:
    model = build_stunet(size_config(name), device="meta")
    expected = [(key, tuple(shape)) for key, shape in layout["sizes"][name]["state_dict"]]
    got = [(key, tuple(t.shape)) for key, t in model.state_dict().items()]
    assert got == expected


@pytest.mark.parametrize("name", list(SIZES))
def test_parameter_counts_equal_the_paper(layout: dict, name: str) -> None:
    spec = layout["sizes"][name]
    model = build_stunet(size_config(name), device="meta")
    assert parameter_count(model) == spec["total_params"]
    by_module = {
        top: sum(t.numel() for k, t in model.state_dict().items() if k.startswith(top + "."))
        for top in spec["params_by_top_level_module"]
    }
    assert by_module == spec["params_by_top_level_module"]
    assert not list(model.buffers())


def test_size_name_round_trips_and_rejects_unknown_widths() -> None:
    for name in SIZES:
        assert size_name(size_config(name, num_classes=7)) == name
    assert size_name(StunetConfig(dims=(8, 16, 32, 64, 128, 128), depth=(1,) * 6)) is None
    with pytest.raises(ValueError, match="unknown STU-Net size"):
        size_config("tiny")


def test_small_forward_on_cpu_gives_full_resolution_logits() -> None:
    model = init_he_(build_stunet(size_config("small")), seed=0).eval()
    with torch.inference_mode():
        logits = model(torch.randn(1, 1, 32, 32, 32))
    assert logits.shape == (1, 105, 32, 32, 32)
    assert torch.isfinite(logits).all()


def test_deep_supervision_returns_five_heads_highest_resolution_first() -> None:
    model = init_he_(build_stunet(size_config("small", num_classes=3)), seed=0)
    model.deep_supervision = True
    with torch.inference_mode():
        heads = model(torch.randn(1, 1, 32, 32, 64))
        model.deep_supervision = False
        full = model(torch.randn(1, 1, 32, 32, 64))
    assert [tuple(h.shape[2:]) for h in heads] == [(32, 32, 64), (16, 16, 32), (8, 8, 16), (4, 4, 8), (2, 2, 4)]
    assert full.shape == (1, 3, 32, 32, 64)


def test_last_pooling_strides_only_the_last_axis() -> None:
    model = build_stunet(size_config("small"), device="meta")
    assert model.conv_blocks_context[5][0].conv1.stride == (1, 1, 2)
    assert model.upsample_layers[0].scale == (1, 1, 2)
