"""Grand-Challenge's algorithm interface: the facts both sides of the harness must agree on.

The runner plays the platform (it stages /input and reads /output of a participant container) and
`gc-evaluate` reads the platform's real jobs; both use these definitions, so a submission that
passes one passes the other. Kept free of heavy imports: the command line reads it to build help.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: The output socket an algorithm writes its segmentation to unless its image label or a flag says otherwise.
DEFAULT_OUTPUT_RELATIVE_PATH = "images/abdominal-organ-segmentation"
#: Image files the platform accepts in an output socket (NIfTI is not among them).
OUTPUT_IMAGE_SUFFIXES = (".mha", ".mhd", ".tif", ".tiff")
#: Data files that may sit beside a .mhd header.
OUTPUT_COMPANION_SUFFIXES = (".raw", ".zraw")


def is_output_image(path: Path) -> bool:
    return path.name.lower().endswith(OUTPUT_IMAGE_SUFFIXES)


def one_image_message(images: Sequence[Path], *, relative_path: str) -> str:
    """The platform's message when an output socket holds other than exactly one image."""
    return (f"Only 1 image should be produced in '{relative_path}', found {len(images)}: "
            f"{', '.join(p.name for p in images[:5])}")
