"""Errors of the STU-Net reference container, under one root.

Why a tree: the entry point turns any :class:`StunetError` into one clear last
stderr line and exit code 1 (Grand-Challenge shows users the last stderr line),
while a bug (any other exception) keeps its traceback.
"""

from __future__ import annotations


class StunetError(Exception):
    """Root of every error this package raises on purpose."""


class CheckpointError(StunetError):
    """A checkpoint is missing, ambiguous, unsafe to unpickle or does not fit the network."""


class InputError(StunetError):
    """The input folder does not hold what the protocol promises (files, inputs.json)."""


class ConfigError(StunetError):
    """An environment variable or flag has a value this package cannot use."""
