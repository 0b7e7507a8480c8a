"""Turn a container's exit into the message a participant can act on (Grand-Challenge's wording)."""

from __future__ import annotations

from harness.errors import CaseFailed, FailureKind
from harness.runner.engine import RunOutcome
from harness.runner.sandbox import SandboxPolicy


def last_stderr_line(outcome: RunOutcome) -> str:
    for line in reversed(outcome.stderr_tail):
        if line.strip():
            return line.strip()[:500]
    return "(no error output)"


def classify(outcome: RunOutcome, policy: SandboxPolicy, *, subject: str) -> CaseFailed | None:
    """None when the container exited 0 in time; else the CaseFailed to record for `subject`."""
    peak = f"; peak memory {outcome.peak_memory_bytes / 1024**2:.0f} MiB" if outcome.peak_memory_bytes else ""
    if outcome.start_error is not None:
        return CaseFailed(FailureKind.START_FAILED, f"{subject}: the container could not start (does the image's entry point "
                                          f"or command exist?): {outcome.start_error}")
    if outcome.timed_out:
        return CaseFailed(FailureKind.TIME_LIMIT, f"{subject}: Time limit exceeded ({policy.time_limit_s:.0f} s); "
                                        "the container was killed")
    if outcome.output_exceeded:
        return CaseFailed(FailureKind.OUTPUT_TOO_LARGE, f"{subject}: the outputs passed their cap of "
                                              f"{policy.output_max_bytes / 1024**2:.0f} MiB or "
                                              f"{policy.output_max_files} files and folders; the container was "
                                              f"stopped there (exit code {outcome.exit_code}: "
                                              f"{last_stderr_line(outcome)})")
    if outcome.oom_killed or outcome.exit_code == 137:
        return CaseFailed(FailureKind.MEMORY_LIMIT, f"{subject}: The container exceeded its memory limit of "
                                          f"{policy.memory_bytes / 1024**2:.0f} MiB (exit code 137{peak})")
    if outcome.exit_code != 0:
        return CaseFailed(FailureKind.CRASH, f"{subject}: the container exited with code {outcome.exit_code}: "
                                   f"{last_stderr_line(outcome)}")
    return None


def unexpected_failure(subject: str, exc: BaseException) -> CaseFailed:
    """The failed-case reason for an exception no check foresaw (a bug, or output nobody imagined).

    A container step turns it into a failed case so that one hostile output never crashes a run.
    """
    return CaseFailed(FailureKind.HARNESS_ERROR, f"{subject}: the harness could not handle this output "
                                       f"({type(exc).__name__}: {str(exc)[:300]})")
