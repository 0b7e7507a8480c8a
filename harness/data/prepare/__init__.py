"""`harness data prepare`: the seven real test sets, from their public downloads to the data root.

One adapter per source (flare22, amos, word, totalseg, btcv) knows where the dataset's own release
puts the benchmark's test cases and how to turn its ground truth into benchmark ids; `pipeline`
does the rest the same way for all: count check, conversion, atomic writes, resume, manifest.

Prepared layout under the data root (one harness-defined layout, whatever the source's):
    <key>/images/<case_id>.nii.gz     the image as published (copied byte for byte; a NIfTI whose header ITK
                                      refuses for non-orthonormal direction cosines is written anew with
                                      the nearest rotation, recorded per case as direction_approximated)
    <key>/labels/<case_id>.nii.gz     the ground truth in benchmark ids 0..10 (uint8), on the image grid
    <key>/prepare-report.json         per-case decisions (adrenal midline, absent structures, overlaps)
    manifests/<key>.json              the filled manifest (cases, relative paths, sha256, the release)
The shipped ground_truth_manifests/a-eval/<key>.json stays generic (no cases): it is the template
and the contract (expected case count). Use the prepared benchmark with
`--benchmark <data root>/manifests --data-root <data root>` (any folder of manifests is a benchmark).
Check it any time with `harness data verify --data-root <data root>`.
"""

from __future__ import annotations

import importlib

#: name -> module; loaded on first use, so that building the CLI parser (cli.register) stays cheap.
_EXPORTS = {"CaseOutcome": "pipeline", "PrepareReport": "pipeline", "default_manifest_path": "pipeline",
            "prepare": "pipeline", "SOURCES": "sources", "source_adapter": "sources"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
