import numpy as np
import pytest

from harness.errors import CaseFailed, LabelMapError
from harness.labelmap import LabelMap, build_mapping, resolve_label_map, shipped_mapping
from harness.taxonomy import load_taxonomy, normalize_name

# BENCHMARK.md section 3, written out independently of the shipped JSON files.
EXPECTED = {
    "flare22": {1: 5, 2: 2, 3: 1, 4: 7, 7: 8, 8: 9, 9: 4, 10: 10, 11: 6, 13: 3},
    "amos": {1: 1, 2: 2, 3: 3, 4: 4, 5: 10, 6: 5, 7: 6, 10: 7, 11: 8, 12: 9},
    "word_split": {1: 5, 2: 1, 3: 3, 4: 2, 5: 6, 6: 4, 7: 10, 8: 7, 12: 9, 17: 8},
    "totalseg_ct_v2": {**{i: i for i in range(1, 10)}, 15: 10},
    "totalseg_mr": {**{i: i for i in range(1, 10)}, 12: 10},
    "btcv": {1: 1, 2: 2, 3: 3, 4: 4, 5: 10, 6: 5, 7: 6, 11: 7, 12: 8, 13: 9},
    "stunet_totalseg_v1": {77: 1, 39: 2, 38: 3, 15: 4, 40: 5, 78: 6, 46: 7, 2: 8, 1: 9, 11: 10},
    "a-eval": {i: i for i in range(1, 11)},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_maps_resolve_to_the_benchmark_table(name):
    assert shipped_mapping(name).native_to_benchmark == EXPECTED[name]


def test_stunet_map_is_not_the_totalsegmentator_v2_order():
    """Mapping STU-Net output with v2 ids would score garbage: the two maps must disagree."""
    stunet, v2 = shipped_mapping("stunet_totalseg_v1"), shipped_mapping("totalseg_ct_v2")
    assert stunet.native_to_benchmark != v2.native_to_benchmark
    assert stunet.label_map.labels[1] == "adrenal_gland_left" and stunet.label_map.labels[104] == "vertebrae_T9"


def test_word_single_adrenal_is_an_ambiguity_error():
    with pytest.raises(LabelMapError, match="id 12 'adrenal' is ambiguous"):
        shipped_mapping("word")


@pytest.mark.parametrize("alias,organ", [
    ("right kidney", "kidney_right"), ("kidney_R", "kidney_right"), ("Kidney (R)", "kidney_right"),
    ("Left Adrenal Gland", "adrenal_gland_left"), ("gall bladder", "gallbladder"), ("Oesophagus", "esophagus"),
    ("LIVER", "liver"), ("kidney_L", "kidney_left"),
])
def test_synonyms(alias, organ):
    assert load_taxonomy().resolve(alias).name == organ


def test_side_is_never_merged():
    taxonomy = load_taxonomy()
    assert taxonomy.resolve("kidney_cyst_left") is None
    assert normalize_name("right kidney") != normalize_name("left kidney")


def test_two_ids_claiming_one_organ_is_an_error():
    with pytest.raises(LabelMapError, match="ids 1 and 2 both claim benchmark organ 'liver'"):
        build_mapping(LabelMap(name="bad", labels={1: "liver", 2: "Liver"}))


def test_map_naming_no_benchmark_organ_is_an_error():
    with pytest.raises(LabelMapError, match="names no benchmark organ"):
        build_mapping(LabelMap(name="brain", labels={1: "brain", 2: "skull"}))


def test_unmapped_names_reported_once_as_background():
    mapping = shipped_mapping("flare22")
    notes = mapping.notes()
    assert len(notes) == 1 and "5 aorta" in notes[0] and "12 duodenum" in notes[0]
    assert mapping.lut[5] == 0 and mapping.lut[12] == 0


def test_apply_is_a_lookup_table_pass():
    mapping = shipped_mapping("flare22")
    volume = np.array([[[0, 1, 3, 5, 13]]], dtype=np.int16)
    assert mapping.apply(volume).tolist() == [[[0, 5, 1, 0, 3]]]


@pytest.mark.parametrize("shape", [(3, 40, 64), (5, 7, 13)])  # whole 64-byte blocks, and a ragged tail
def test_a_uint8_volume_maps_as_the_table_says_in_background_blocks_and_organ_blocks(shape):
    mapping = shipped_mapping("flare22")
    rng = np.random.default_rng(3)
    volume = np.where(rng.random(shape) < 0.9, 0, rng.integers(1, 14, shape)).astype(np.uint8)
    volume[:, : shape[1] // 2] = 0  # long runs of background, as in a CT
    np.testing.assert_array_equal(mapping.apply(volume), mapping.lut[volume])
    for bad in (14, 255):  # past the map's ids: one voxel anywhere is enough to refuse
        spoiled = volume.copy()
        spoiled.flat[rng.integers(spoiled.size)] = bad
        with pytest.raises(CaseFailed, match=str(bad)):
            mapping.apply(spoiled, case_id="c")


def test_apply_rejects_undeclared_ids_naming_case_file_and_values():
    mapping = shipped_mapping("btcv")
    volume = np.array([[[0, 1, 14, 200]]], dtype=np.uint8)
    with pytest.raises(CaseFailed) as info:
        mapping.apply(volume, case_id="img0007", source="prediction /p/img0007.nii.gz")
    assert info.value.kind == "unknown_labels"
    assert "img0007" in info.value.message and "/p/img0007.nii.gz" in info.value.message
    assert "14, 200" in info.value.message


def test_apply_rejects_a_gap_id_inside_the_range():
    mapping = build_mapping(LabelMap(name="gappy", labels={1: "liver", 3: "spleen"}))
    with pytest.raises(CaseFailed, match="undeclared|not declared"):
        mapping.apply(np.array([0, 1, 2, 3], dtype=np.uint8), case_id="c")


def test_apply_rejects_negative_and_float():
    mapping = shipped_mapping("a-eval")
    with pytest.raises(CaseFailed) as negative:
        mapping.apply(np.array([0, -1], dtype=np.int16), case_id="c")
    assert negative.value.kind == "negative_labels"
    with pytest.raises(CaseFailed) as floating:
        mapping.apply(np.array([0.0, 1.0], dtype=np.float32), case_id="c")
    assert floating.value.kind == "non_integer_labels"


def test_resolve_inline_json_and_file(tmp_path):
    inline = resolve_label_map('{"name": "mine", "labels": {"1": "right kidney"}}')
    assert build_mapping(inline).native_to_benchmark == {1: 2}
    path = tmp_path / "map.json"
    path.write_text('{"name": "f", "labels": {"7": "Spleen"}}')
    assert build_mapping(resolve_label_map(str(path))).native_to_benchmark == {7: 1}
    with pytest.raises(Exception, match="invalid label_map document"):
        resolve_label_map('{"name": "x", "labels": {"0": "liver"}}')
