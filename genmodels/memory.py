"""Process-wide memory setting for the long-lived app server."""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
MMAP_THRESHOLD_BYTES = 1 << 20
TRIM_THRESHOLD_BYTES = 2 << 20  # glibc's own ratio to the mmap threshold; it may have doubled a raised one before


def return_large_frees_to_the_os() -> bool:
    """Have glibc serve every allocation of 1 MB or more from its own mapping, unmapped when freed; False where the
    C library is not glibc.

    By default glibc raises this threshold to the largest block freed so far (up to 32 MB), after which big
    temporary tensors (a 31 MB chunk of floats) come from the heap, fragment it and stay resident: they added
    50-300 MB to the app's resident memory, varying from run to run.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl's and macOS's mallopt differ or are absent)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    except (AttributeError, OSError):
        return False
