"""The one place that reads and writes the harness's JSON: schema validation and atomic writes.

Every JSON the harness reads (manifests, label maps, taxonomy, results to resume) or writes
(results, reports) goes through here, so that no document escapes its schema, no NaN/Infinity
reaches a file (strict JSON consumers such as Grand-Challenge's leaderboard reject them), and a
crash mid-write never leaves a truncated file behind.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from harness.atomic import write_text_atomic
from harness.errors import SchemaError


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load a schema shipped in `harness/schemas/` (e.g. "results")."""
    text = resources.files("harness.schemas").joinpath(f"{name}.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def _validator(schema_name: str, definition: str | None = None) -> jsonschema.Draft202012Validator:
    """One validator per schema (or one of its $defs): building it costs more than validating."""
    schema = load_schema(schema_name)
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def validate(document: Any, schema_name: str, *, where: str, definition: str | None = None,
             first_only: bool = False) -> None:
    """Validate against a shipped schema, or one of its `$defs`; the error names `where` and the JSON path.

    `first_only` stops at the first error (untrusted documents: a 200,000-entry map with an error in
    every entry must not build 200,000 error objects to report one).
    """
    validator = _validator(schema_name, definition)
    if first_only:
        errors = [error] if (error := next(iter(validator.iter_errors(document)), None)) is not None else []
    else:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise SchemaError(f"{where}: invalid {schema_name} document at '{path}': {first.message}{more}")


def read_json(path: Path, schema_name: str | None = None) -> Any:
    """Read a JSON file, refusing NaN/Infinity, and validate it when a schema is named."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise SchemaError(f"{path}: not valid JSON: {exc}") from exc
    if schema_name is not None:
        validate(document, schema_name, where=str(path))
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name} (NaN/Infinity are not allowed)")


def to_plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types; NaN/Inf become None."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def write_json_atomic(path: Path, document: Any, schema_name: str | None = None, *, compact: bool = False) -> None:
    """Validate (when a schema is named), then write via a temporary file and rename.

    The rename is atomic on POSIX: readers see the old or the new file, never half of one.
    `compact` writes one line, which json's C encoder does (an indented document goes through its
    pure-Python encoder, ten times slower): for files rewritten after every case.
    """
    path = Path(path)
    document = to_plain(document)
    if schema_name is not None:
        validate(document, schema_name, where=str(path))
    text = json.dumps(document, indent=None if compact else 2, allow_nan=False) + "\n"
    write_text_atomic(path, text)


