"""genmodels.memory: big temporary tensors are given back to the OS once the app has fixed glibc's mmap threshold."""
import subprocess
import sys

import pytest

from genmodels.memory import return_large_frees_to_the_os

# a 32 MB block freed raises glibc's dynamic threshold; 20 MB temporaries then interleave with small survivors
FRAGMENTING_PATTERN = """
import sys, psutil, torch
if sys.argv[1] == "fixed":
    from genmodels.memory import return_large_frees_to_the_os
    assert return_large_frees_to_the_os()
rss = lambda: psutil.Process().memory_info().rss / 2**20
big = torch.ones(8_000_000)
del big
before = rss()
survivors = []
for _ in range(6):
    temporary = torch.ones(5_000_000)
    survivors.append(torch.ones(1000))
    del temporary
print(rss() - before)
"""


def resident_growth_mb(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", FRAGMENTING_PATTERN, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's")
def test_freed_temporaries_leave_the_process():
    assert return_large_frees_to_the_os()
    assert resident_growth_mb("fixed") < 5
    assert resident_growth_mb("default") > 15  # the same pattern without the setting keeps them resident
