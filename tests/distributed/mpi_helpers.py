"""Helpers of the distributed tests (imported by them as ``mpi_helpers``)."""
from __future__ import annotations

import numpy as np


def same_on_all_ranks(comm, arrays) -> bool:
    """Whether every rank holds bitwise the same arrays (True on every rank, or False)."""
    mine = [np.ascontiguousarray(a).tobytes() for a in arrays]
    everyone = comm.allgather(mine)
    return all(theirs == everyone[0] for theirs in everyone)


def flat_params(net) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in net.weights + net.biases])
