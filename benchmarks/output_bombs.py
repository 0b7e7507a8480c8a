"""Peak harness memory reading hostile predictions: a plain `sitk.ReadImage` vs `read_prediction`.

    python benchmarks/output_bombs.py [--gib 1]

Each read runs in a fresh interpreter and reports the kernel's peak RSS (SimpleITK allocates in
C++, where tracemalloc sees nothing). Bombs: a ~1 MB .mha claiming 1024^3 voxels, a ~1 MB .nii.gz
whose header claims 1024^3 voxels, and a .nii.gz with an honest header whose gzip stream inflates
1 GiB past its voxels; an honest 64^3 prediction is the baseline. The plain read is what the
harness did before it read headers first (it allocates what the header claims, up to ~1-2 GiB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.runner.outputs_helpers import compressed_zeros, huge_mha  # noqa: E402

_CHILD = """
import resource, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
import SimpleITK as sitk
path = Path({path!r})
try:
    if {ours!r}:
        from harness.imageio import Geometry
        from harness.scoring.outputs import read_prediction
        read_prediction(path, case_id="bench", reference=Geometry.of(sitk.ReadImage({reference!r})))
    else:
        sitk.ReadImage(str(path))
    outcome = "read"
except Exception as exc:
    outcome = "refused: " + exc.kind if hasattr(exc, "kind") else type(exc).__name__ + ": " + str(exc)[:70]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, outcome)
"""


def peak(path: Path, reference: Path, *, ours: bool) -> tuple[int, str]:
    code = _CHILD.format(repo=str(REPO), path=str(path), reference=str(reference), ours=ours)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return 0, f"died ({done.returncode}): {done.stderr.strip().splitlines()[-1][:70] if done.stderr else ''}"
    size, outcome = done.stdout.strip().split(" ", 1)
    return int(size), outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=1, help="GiB each bomb claims or inflates to (default 1)")
    args = parser.parse_args()
    total = args.gib * 1024**3
    side = round(total ** (1 / 3))
    with tempfile.TemporaryDirectory(prefix="aeval-bombs-") as scratch_name:
        scratch = Path(scratch_name)
        honest = sitk.GetImageFromArray(np.zeros((64, 64, 64), dtype=np.uint8))
        sitk.WriteImage(honest, str(scratch / "honest.nii.gz"), useCompression=True)
        sitk.WriteImage(honest, str(scratch / "honest.nii"))
        files = {"honest .nii.gz (64^3)": scratch / "honest.nii.gz"}
        (scratch / "huge.mha").write_bytes(huge_mha(side))
        files[f".mha claiming {side}^3"] = scratch / "huge.mha"
        header = bytearray((scratch / "honest.nii").read_bytes()[:352])
        header[42:48] = np.array([side, side, side], dtype="<i2").tobytes()
        (scratch / "huge.nii.gz").write_bytes(compressed_zeros(side**3, prefix=bytes(header), wrapper="gzip"))
        files[f".nii.gz header claiming {side}^3"] = scratch / "huge.nii.gz"
        (scratch / "stream.nii.gz").write_bytes(
            compressed_zeros(total, prefix=(scratch / "honest.nii").read_bytes(), wrapper="gzip"))
        files[f".nii.gz inflating {args.gib} GiB past its voxels"] = scratch / "stream.nii.gz"
        print(f"{'prediction':<40} {'file':>8} {'sitk.ReadImage':>15} {'read_prediction':>16} {'ratio':>6}  outcome")
        for label, path in files.items():
            plain, plain_outcome = peak(path, scratch / "honest.nii.gz", ours=False)
            ours, outcome = peak(path, scratch / "honest.nii.gz", ours=True)
            ratio = plain / ours if ours else float("nan")
            print(f"{label:<40} {path.stat().st_size / 1024**2:>6.1f}MB {plain / 1024**2:>12.0f}MiB "
                  f"{ours / 1024**2:>13.0f}MiB {ratio:>6.1f}  {outcome[:60]}")
            print(f"{'':<40} {'':>8} plain read: {plain_outcome[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
