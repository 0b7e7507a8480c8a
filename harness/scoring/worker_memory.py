"""Scoring workers keep the memory they free, so that each case does not fault its buffers in afresh.

A full-size case allocates tens of MB at a time (inflated voxels, mapped labels, surfel and
distance arrays). glibc serves a block above its mmap threshold (32 MiB at most, whatever is asked)
from a fresh mapping and unmaps it when freed, and trims the heap's top when enough is free: the
next case then had the kernel zero and fault in the same memory again. Measured on a full-size
flare22 case in a forked worker: about 20,000 page faults and 0.08-0.1 s of system time per case,
against 22 faults and 0.00 s with mmap off and trimming raised (case 3 onwards).

So a scoring worker takes every block from its heap and keeps what it frees for the next case. Its
memory stays at the peak of its largest case, which it needs anyway; a block the heap cannot hold
(no room to grow) still gets a mapping, as glibc falls back to one then. Only glibc has these
knobs: elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes

#: mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The largest trim threshold mallopt takes (an int): freed memory is in effect never trimmed.
NEVER_TRIM = 2**31 - 1

__all__ = ["keep_freed_memory"]


def keep_freed_memory() -> bool:
    """Serve every block of this process from its heap and keep freed memory; False where not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
