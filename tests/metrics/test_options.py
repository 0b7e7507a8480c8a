"""The public option types."""

from __future__ import annotations

import dataclasses

import pytest

from metrics import EmptyPolicy, OrganSpec


def test_empty_policy_values():
    assert EmptyPolicy("aeval") is EmptyPolicy.AEVAL
    assert EmptyPolicy("nnunet") is EmptyPolicy.NNUNET


def test_organ_spec_is_frozen_with_restriction_off_by_default():
    organ = OrganSpec(label=10, name="esophagus", tolerance_mm=3.0)
    assert organ.restrict_to_gt_extent is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        organ.label = 3  # type: ignore[misc]
