"""One error tree: failure kinds match the schemas and the code, exit codes follow the error class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness
from harness import errors
from harness.cli import main
from harness.errors import CaseFailed, ExitCode, FailureKind, SchemaError
from harness.jsonio import load_schema, validate
from harness.results import failed_record

HARNESS = Path(harness.__file__).parent
KIND_ARGUMENTS = {"CaseFailed": 0, "failed_record": None}  # where a call names a failure kind (position or kind=)


@pytest.mark.parametrize("schema", ["results", "gc_metrics"])
def test_schema_error_kind_enum_is_the_failure_kinds(schema):
    cases = [d for d in load_schema(schema)["$defs"].values() if "error_kind" in d.get("properties", {})]
    assert cases, f"{schema}.schema.json has no error_kind"
    for definition in cases:
        assert definition["properties"]["error_kind"]["enum"] == [None] + [k.value for k in FailureKind]


def _kind_literals() -> list[tuple[str, int, str]]:
    """Every string literal passed as a failure kind anywhere in the package (file, line, value)."""
    found = []
    for path in sorted(HARNESS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in KIND_ARGUMENTS:
                continue
            position = KIND_ARGUMENTS[name]
            arguments = [k.value for k in node.keywords if k.arg == "kind"]
            if position is not None and len(node.args) > position:
                arguments.append(node.args[position])
            for argument in arguments:
                found += [(str(path.relative_to(HARNESS)), node.lineno, value) for value in _literals(argument)]
    return found


def _literals(argument: ast.expr) -> list[str]:
    """The string values an argument can take: a literal, or either branch of `a if cond else b`."""
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return [argument.value]
    if isinstance(argument, ast.IfExp):
        return _literals(argument.body) + _literals(argument.orelse)
    if isinstance(argument, ast.BoolOp):  # self.failure_kind or "crash"
        return [v for value in argument.values for v in _literals(value)]
    return []


def test_no_failure_kind_is_a_string_outside_the_enum():
    known = {k.value for k in FailureKind}
    strays = [f"{path}:{line}: {value!r}" for path, line, value in _kind_literals() if value not in known]
    assert not strays, "failure kinds missing from harness.errors.FailureKind: " + "; ".join(strays)


def test_failure_kinds_are_used_somewhere():
    """A kind nobody raises is a stale enum member (and a stale schema value)."""
    source = "\n".join(p.read_text() for p in HARNESS.rglob("*.py") if p.name != "errors.py")
    unused = [k.name for k in FailureKind if f"FailureKind.{k.name}" not in source and f'"{k.value}"' not in source]
    assert not unused


def test_unknown_kind_is_refused_where_it_is_made():
    with pytest.raises(ValueError):
        CaseFailed("disk_on_fire", "case x: ...")


def test_failed_record_stores_the_plain_string_and_validates():
    record = failed_record("case_1", kind=FailureKind.MEMORY_LIMIT, message="m", organs=["liver"], metrics=["dice"])
    assert type(record["error_kind"]) is str and record["error_kind"] == "memory_limit"
    assert f"{FailureKind.CRASH}" == "crash" and FailureKind("crash") is FailureKind.CRASH
    validate(record, "results", where="record", definition="case")
    with pytest.raises(SchemaError, match="error_kind"):
        validate({**record, "error_kind": "disk_on_fire"}, "results", where="record", definition="case")


def test_every_exception_class_lives_in_errors():
    """No module but errors.py defines an exception class."""
    offenders = []
    for path in sorted(HARNESS.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception", "Failed", "Unfit",
                                                                       "Unavailable", "Mismatch", "Problem"))
                    for b in node.bases):
                offenders.append(f"{path.relative_to(HARNESS)}:{node.lineno} {node.name}")
    assert not offenders


def test_exit_codes_by_error_class():
    assert errors.HarnessError("x").exit_code == ExitCode.USAGE == 2
    assert errors.ManifestError("x").exit_code == ExitCode.USAGE
    assert errors.DockerUnavailable("x").exit_code == ExitCode.ENVIRONMENT == 3
    assert errors.ClusterError("x").exit_code == ExitCode.CLUSTER == 4  # a lost scheduler is not a usage error
    assert errors.DataRootMismatch("x", "tcp://w").exit_code == ExitCode.CLUSTER
    assert len({c.value for c in ExitCode}) == len(ExitCode)


def test_no_docker_engine_exits_with_the_environment_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    code = main(["run", "--image", "any", "--out", str(tmp_path / "out"), "--data-root", str(tmp_path),
                 "--benchmark", "synthetic"])
    assert code == ExitCode.ENVIRONMENT
    assert "cannot reach a Docker engine" in capsys.readouterr().err


def test_bad_input_exits_with_the_usage_code(tmp_path, capsys):
    code = main(["label-maps", str(tmp_path / "missing.json")])
    assert code == ExitCode.USAGE
    assert "missing.json does not exist" in capsys.readouterr().err
