"""Errors of the harness, under one root.

Two families, kept apart on purpose (as Grand-Challenge's backends do):
- `HarnessError` subclasses stop a whole command (no daemon, unreadable manifest, bad flags).
  Their message says what is wrong and what to do next; the CLI prints it on one line.
- `CaseFailed` is a *value-like* exception: one case could not be scored. The caller turns it into
  a failed case record (status "failed", organs scored 0, flagged) and goes on with the others.
"""

from __future__ import annotations

from harness.text import printable


class HarnessError(Exception):
    """A problem that stops the whole command; the message is shown to the user as is."""

    def __str__(self) -> str:
        return printable(super().__str__())  # it may quote image labels: never print raw escapes


class SchemaError(HarnessError):
    """A JSON document does not follow its schema (the message names the file and the JSON path)."""


class LabelMapError(HarnessError):
    """A label map cannot be turned into benchmark ids (conflict, no benchmark organ, ambiguity)."""


class ManifestError(HarnessError):
    """A manifest is missing, invalid, or points at files that are not there."""


class DockerUnavailable(HarnessError):
    """No Docker engine answers."""


class CaseFailed(Exception):
    """One case failed; `kind` is a stable machine-readable reason, `message` is for humans.

    Kinds used across the harness: missing_prediction, unreadable_prediction, geometry_mismatch,
    non_integer_labels, negative_labels, unknown_labels, unreadable_ground_truth, and the runner's
    container failures (memory_limit, time_limit, crash, no_output, too_many_outputs, ...), the output
    reader's refusals (unsafe_metaimage, unsafe_output_path, symlink_in_output, special_file_in_output,
    output_too_large, output_too_deep, output_path_too_long, output_too_many_files,
    prediction_too_large) and harness_error (an exception no check foresaw, caught per case).
    The message is made printable here: it often quotes what a container wrote.
    """

    def __init__(self, kind: str, message: str, *, details: dict | None = None) -> None:
        message = printable(message)  # it quotes container output: never store or print raw escapes
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details or {}
