"""CPU threads of a worker: torch's and numba's, and how one can disturb the other."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import torch  # first, as on a worker that built the network before running STARFM
import numba
import numpy as np
from lst_pipeline.devices import limit_cpu_threads, limit_numba_threads
from lst_pipeline.fusion.baselines import starfm

limit_cpu_threads(1)  # what a worker with one thread gives the network
torch.ones(512, 512) @ torch.ones(512, 512)  # the network has run: torch's OpenMP is up
limit_numba_threads({limit})
rng = np.random.default_rng(0)
fine = rng.normal(300, 3, (96, 96)).astype(np.float32)
starfm(fine, fine + 0.5, fine + 1.0, window=7)
after = torch.get_num_threads()
limit_cpu_threads(1)
print(after, numba.get_num_threads(), torch.get_num_threads())
"""


def _threads_after_starfm(limit):
    """torch's threads after a STARFM call, numba's, and torch's once limited again."""
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(limit=limit)], check=True,
                         capture_output=True, text=True, timeout=300).stdout.split()
    return tuple(out[-3:])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to see numba's default")
def test_a_starfm_kernel_resets_torchs_threads_and_the_network_restores_them():
    # numba's OpenMP layer resets the thread count torch shares, whatever numba's own limit
    assert int(_threads_after_starfm(None)[0]) > 1
    reset, numba_threads, restored = _threads_after_starfm(1)
    assert int(reset) > 1 and numba_threads == "1"  # numba limited as fuse_chunk does
    assert restored == "1"  # what the network sets again before each forward pass
