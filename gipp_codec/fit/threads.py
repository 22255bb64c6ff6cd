"""Thread settings for fitting on the CPU.

On the CPU the heavy work is in the numba renderer, which has its own thread pool;
torch's per-iteration work (loss, Adam on a few 10k parameters) is tiny and, with
several intra-op threads, only competes with numba for the cores. Measured on 2 cores
(BENCHMARKS.md): torch's own loss/backward ops took 24 ms with 2 threads against
0.5-0.9 ms with one.
"""

from contextlib import contextmanager

import torch


@contextmanager
def cpu_fitting_threads(device: torch.device):
    """Run the body with one torch intra-op thread when ``device`` is the CPU; restore after."""
    if torch.device(device).type != "cpu":
        yield
        return
    # numba's OpenMP pool, when its first parallel kernel starts it, sets the process's
    # OpenMP thread count back to all cores, which torch's intra-op count is: started
    # here, before torch is set to one thread, it leaves that setting alone
    import numba

    numba.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
