"""`harness validate`: will this submission work? Checked before it is sent, by the participant's CI.

Two stages, both exactly what `harness run` (and Grand-Challenge) will apply:
1. static checks of the image, nothing run: one linux/amd64 image in the tarball, a non-root user,
   its size, the declared protocol, output socket and label map (parsed and mapped onto the ten
   organs), an entry point;
2. a dry run through the very same sandbox, protocol and limits as `harness run`, on synthetic
   sample cases of both modalities: outputs exist, load, match the input geometry, use only declared
   ids, and the time and memory used are reported against the limits.
Every check is one pass/fail line with an actionable message; `--report` writes them as JSON.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import __version__
from harness.errors import HarnessError
from harness.jsonio import write_json_atomic
from harness.labelmap import build_mapping, resolve_label_map
from harness.runner import engine
from harness.gc_interface import DEFAULT_OUTPUT_RELATIVE_PATH
from harness.runner.images import (LABEL_FLARE_COMMAND, LABEL_LABEL_MAP,
                                   LABEL_LABEL_MAP_FILE, LABEL_OUTPUT_PATH, PROTOCOLS, DEFAULT_FLARE_COMMAND, ImageInfo,
                                   check_tarball, declared_label_map, inspect_image, load_tarball)
from harness.runner.protocols.outputs_tree import check_output_relative_path
from harness.runner.sandbox import SandboxPolicy
from harness.taxonomy import load_taxonomy
from harness.text import printable

#: Synthetic sample cases of both modalities used by the dry run (test set key, number of cases).
SAMPLE_SETS = (("flare22", 1), ("amos_mr", 1))
#: Lines of the container's log kept in the report for each dry-run case.
LOG_TAIL_LINES = 40


def no_label_map_message() -> str:
    """What to do when an image declares no label map: the flag, or the image labels that declare one."""
    organs = load_taxonomy().organs
    first, last = organs[0], organs[-1]
    return (f"the image declares no label map, so its output ids mean nothing yet. If it writes the benchmark's ids "
            f"({first.id} {first.name} ... {last.id} {last.name}), pass --label-map a-eval; otherwise declare its ids "
            f"with the image label {LABEL_LABEL_MAP} (a shipped name such as a-eval, or inline JSON) or "
            f"{LABEL_LABEL_MAP_FILE} (the path of a JSON file inside the image), e.g. "
            f"`LABEL {LABEL_LABEL_MAP}=a-eval` in the Dockerfile")


_GEOMETRY_PART = re.compile(r"(?P<what>size|spacing|origin|direction) (?P<output>\([^)]*\)) != "
                            r"(?P<input>\([^)]*\))(?P<unit> mm)?(?P<axes> \(x,y,z\))?")


@dataclass
class Check:
    name: str
    passed: bool
    message: str
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.message = printable(self.message)  # it may quote container output or image labels

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name:<22} {self.message}"


@dataclass(frozen=True)
class ValidateRequest:
    image: str | None
    image_tar: Path | None
    policy: SandboxPolicy
    protocol: str | None = None
    label_map: str | None = None
    output_relative_path: str | None = None
    model_dir: Path | None = None
    max_image_bytes: int = 20 * 1024**3
    dry_run: bool = True


def static_checks(client, request: ValidateRequest) -> tuple[list[Check], ImageInfo | None]:
    checks: list[Check] = []
    image: ImageInfo | None = None
    try:
        if request.image_tar is not None:
            tarball = check_tarball(request.image_tar, max_bytes=request.max_image_bytes)
            checks.append(Check("tarball", True, f"one linux/{tarball.architecture} image "
                                f"({tarball.config_digest[:19]})"))
            image = load_tarball(client, request.image_tar, max_bytes=request.max_image_bytes)
        else:
            image = inspect_image(client, request.image)
    except HarnessError as error:
        checks.append(Check("image", False, str(error)))
        return checks, None
    checks.append(Check("architecture", image.architecture == "amd64" and image.os == "linux",
                        f"{image.os}/{image.architecture}" + ("" if image.architecture == "amd64" else
                                                              ": rebuild with --platform=linux/amd64")))
    root_note = (f"runs as root ('{image.user or '(unset)'}'): Grand-Challenge refuses it; add `USER <name>` after "
                 "creating a user in the Dockerfile")
    if image.runs_as_root and request.policy.allow_root:
        checks.append(Check("user", True, root_note.replace("runs as root", "allowed by --allow-root, but runs as root")))
    else:
        checks.append(Check("user", not image.runs_as_root,
                            f"runs as '{image.user}'" if not image.runs_as_root else root_note))
    size_gib = image.size_bytes / 1024**3
    checks.append(Check("size", image.size_bytes <= request.max_image_bytes,
                        f"{size_gib:.2f} GiB (limit {request.max_image_bytes / 1024**3:.0f} GiB)"))
    protocols = (request.protocol,) if request.protocol else image.declared_protocols
    bad = [p for p in protocols if p not in PROTOCOLS]
    checks.append(Check("protocol", bool(protocols) and not bad,
                        f"{','.join(protocols)}" + (f": unknown {bad}; use gc and/or flare" if bad else "")))
    checks.append(_output_socket_check(request.output_relative_path or
                                       image.labels.get(LABEL_OUTPUT_PATH, DEFAULT_OUTPUT_RELATIVE_PATH)))
    checks.append(_label_map_check(client, image, request))
    checks.append(_entrypoint_check(client, image, protocols))
    return checks, image


def _output_socket_check(output_path: str) -> Check:
    try:
        relative = check_output_relative_path(output_path, source="output socket (image label or flag)")
    except HarnessError as error:
        return Check("output socket", False, str(error))
    if not re.fullmatch(r"images/[a-z0-9-]+", relative):
        return Check("output socket", False, f"/output/{relative}/: must look like images/<slug>")
    return Check("output socket", True, f"/output/{relative}/")


def _label_map_check(client, image: ImageInfo, request: ValidateRequest) -> Check:
    try:
        label_map = resolve_label_map(request.label_map) if request.label_map else declared_label_map(client, image)
        if label_map is None:
            return Check("label map", False, no_label_map_message())
        mapping = build_mapping(label_map)
    except HarnessError as error:
        return Check("label map", False, str(error))
    mapped = ", ".join(f"{n}->{mapping.label_map.labels[n]}" for n in sorted(mapping.native_to_benchmark))
    n_organs = len(load_taxonomy().organs)
    missing = n_organs - len(mapping.native_to_benchmark)
    return Check("label map", True, f"'{label_map.name}' maps {len(mapping.native_to_benchmark)} of {n_organs} organs"
                 + (f" ({missing} never predicted: they will score 0)" if missing else ""),
                 {"mapped": mapped, "background": sorted(mapping.unmapped_names.values())})


def _entrypoint_check(client, image: ImageInfo, protocols) -> Check:
    if "gc" in protocols and not (image.entrypoint or image.cmd):
        return Check("entry point", False, "no ENTRYPOINT or CMD: Grand-Challenge starts the image without arguments")
    if "flare" in protocols:
        command = image.labels.get(LABEL_FLARE_COMMAND, DEFAULT_FLARE_COMMAND)
        if command == DEFAULT_FLARE_COMMAND:
            workdir = client.images.get(image.image_id).attrs.get("Config", {}).get("WorkingDir") or "/"
            try:
                engine.read_file_from_image(client, image.image_id, f"{workdir.rstrip('/')}/predict.sh")
            except HarnessError:
                return Check("entry point", False, f"FLARE protocol runs `sh predict.sh` in {workdir}, "
                                                   "but there is no predict.sh there")
    return Check("entry point", True, " ".join((image.entrypoint or []) + (image.cmd or [])) or "(flare command)")


def dry_run(client, request: ValidateRequest, image: ImageInfo) -> list[Check]:
    """The submission on synthetic sample cases, through the very same sandbox and protocol as a run."""
    from harness.data.synth import synthesize
    from harness.runner.driver import SubmissionRun
    from harness.runner.run import RunRequest

    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="aeval-validate-") as scratch_name:
        scratch = Path(scratch_name)
        keys = [key for key, _ in SAMPLE_SETS]
        synthesize(scratch / "data", keys=keys)
        run_request = RunRequest(image=image.image_id, image_tar=None, out_dir=scratch / "out",
                                 data_root=scratch / "data", benchmark="synthetic", datasets=keys,
                                 cases_limit=max(n for _, n in SAMPLE_SETS), protocol=request.protocol,
                                 label_map=request.label_map, output_relative_path=request.output_relative_path,
                                 model_dir=request.model_dir, policy=request.policy, workers=1)
        document = SubmissionRun(run_request, client=client).execute()
        for key, dataset in document["datasets"].items():  # inside: the logs live in the scratch folder
            for case in dataset["cases"]:
                runtime = case.get("runtime") or {}
                usage = _usage(runtime, request.policy)
                name = f"dry run {dataset['modality']}"
                details = {"runtime": runtime, "log_tail": _log_tail(scratch / "out" / "logs" / key, case["case_id"])}
                if case["status"] == "ok":
                    checks.append(Check(name, True, f"{key}/{case['case_id']}: output valid (Dice "
                                                   f"{dataset['dice']:.3f} on synthetic data, not a score); {usage}",
                                        details))
                else:
                    message = participant_message(case["error"] or "", case["error_kind"], scratch)
                    checks.append(Check(name, False, f"{key}/{case['case_id']}: {message}; {usage}",
                                        {**details, "error_kind": case["error_kind"]}))
    return checks


def _log_tail(folder: Path, case_id: str) -> list[str]:
    """The last lines of the container's log for a case (its own log, else the FLARE set run's)."""
    for path in (folder / f"{case_id}.log", folder / "flare-run.log"):
        if path.is_file():
            return path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return []


def participant_message(error: str, kind: str | None, scratch: Path) -> str:
    """A dry-run failure as a participant can act on it.

    The validation's scratch folder is gone when the message is read, so a path inside it is shown
    as the file's name only. A geometry failure says which value is the output's and which the
    input's, and how to fix it: write the output on the input image's grid.
    """
    for root in {str(scratch), str(scratch.resolve())}:
        error = re.sub(re.escape(root) + r"/[^\s:;,]*?([^/\s:;,]+)(?=$|[\s:;,])", r"\1", error)
    if kind != "geometry_mismatch":
        return error

    def explain(match: re.Match) -> str:
        unit = match["unit"] or ""
        axes = match["axes"] or ""
        return (f"{match['what']}: your output has {match['output']}{unit}, "
                f"the input image has {match['input']}{unit}{axes}")

    return (_GEOMETRY_PART.sub(explain, error) + ". Fix: write the segmentation with the input image's geometry "
            "(same size, spacing, origin and direction), e.g. SimpleITK `seg.CopyInformation(input_image)` or, with "
            "nibabel, the input's affine and header")


def _usage(runtime: dict, policy: SandboxPolicy) -> str:
    parts = []
    if runtime.get("wall_s") is not None:
        parts.append(f"time {runtime['wall_s']:.1f} s of {policy.time_limit_s:.0f} s")
    if runtime.get("peak_memory_bytes"):
        peak = runtime["peak_memory_bytes"]
        parts.append(f"memory {peak / 1024**2:.0f} MiB of {policy.memory_bytes / 1024**2:.0f} MiB "
                     f"({100 * peak / policy.memory_bytes:.0f}%)")
    if runtime.get("gpu"):
        parts.append(f"GPU peak {runtime['gpu']['peak_memory_mib']} MiB ({runtime['gpu']['scope']})")
    return ", ".join(parts) or "no usage figures"


def validate_submission(request: ValidateRequest) -> list[Check]:
    client = engine.connect()
    checks, image = static_checks(client, request)
    if request.dry_run:
        if image is None or not all(c.passed for c in checks):
            checks.append(Check("dry run", False, "not run: fix the static checks above first"))
        else:
            checks.extend(dry_run(client, request, image))
    return checks


def write_report(path: Path, checks: list[Check], request: ValidateRequest) -> None:
    write_json_atomic(path, {
        "schema_version": 1, "harness_version": __version__,
        "image": request.image or str(request.image_tar),
        "passed": all(c.passed for c in checks),
        "limits": request.policy.describe(),
        "checks": [asdict(c) for c in checks],
    }, "validation_report")
