"""The label-mapping layer's compiled passes: native label ids to benchmark ids, one table lookup per voxel.

Kept apart from :mod:`harness.labelmap` so that reading, resolving and checking label maps (the
harness's driver process, its CLI) never loads numba; only a process that maps volumes does.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def lookup(flat: np.ndarray, lut: np.ndarray, undeclared: int, out: np.ndarray) -> bool:
    """One pass: the mapped ids into `out`, or False at the first id outside the table or
    undeclared (the caller then names the offending ids)."""
    size = lut.size
    for i in range(flat.size):
        value = flat[i]
        if value < 0 or value >= size:
            return False
        mapped = lut[value]
        if mapped == undeclared:
            return False
        out[i] = mapped
    return True


#: Bytes of background checked at a time by `lookup_bytes` (eight words: one OR, then a fill).
_BLOCK = 64


@numba.njit(cache=True, nogil=True)
def lookup_bytes(flat: np.ndarray, table: np.ndarray, undeclared: int, out: np.ndarray) -> bool:
    """`lookup` for uint8 volumes with a 256-entry table whose entry 0 is 0 (background stays
    background). Most of a segmentation is background (95 % of a CT's voxels): a block of it is
    recognised by one OR of its words and filled with zeros, so the pass costs about a copy."""
    blocks = flat.size // _BLOCK
    source = flat[:blocks * _BLOCK].view(np.uint64)
    target = out[:blocks * _BLOCK].view(np.uint64)
    words = _BLOCK // 8
    bad = False
    for b in range(blocks):
        w = b * words
        if (source[w] | source[w + 1] | source[w + 2] | source[w + 3] | source[w + 4] | source[w + 5]
                | source[w + 6] | source[w + 7]) == 0:
            for v in range(w, w + words):
                target[v] = 0
            continue
        for i in range(b * _BLOCK, (b + 1) * _BLOCK):
            mapped = table[flat[i]]
            bad |= mapped == undeclared
            out[i] = mapped
    for i in range(blocks * _BLOCK, flat.size):
        mapped = table[flat[i]]
        bad |= mapped == undeclared
        out[i] = mapped
    return not bad
