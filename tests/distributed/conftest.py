"""Tests that run on every rank of ``mpiexec -n 2 python -m pytest tests/distributed``.

tests/test_distributed.py starts them so (with a timeout: a deadlock fails the
run instead of blocking it); a plain ``python -m pytest`` does not collect this
folder (see tests/conftest.py).  Every rank runs the same tests in the same
order, so each test's collectives meet; a test compares what the ranks hold by
gathering it, and asserts the same thing on every rank.
"""
from __future__ import annotations

import faulthandler
import sys

import pytest
from mpi4py import MPI


#: Seconds a test may take before its rank prints where it is stuck and exits (which
#: ends the job): a deadlock shows its place instead of only the launcher's timeout.
STUCK_SECONDS = 120


@pytest.fixture
def comm():
    """COMM_WORLD; the ranks meet at a barrier after the test, so one test cannot run
    into the next one's collectives."""
    world = MPI.COMM_WORLD
    if world.Get_size() < 2:
        pytest.fail("tests/distributed runs under an MPI launcher with at least 2 ranks: "
                    "mpiexec -n 2 python -m pytest tests/distributed")
    faulthandler.dump_traceback_later(STUCK_SECONDS, exit=True, file=sys.__stderr__)
    yield world
    world.Barrier()
    faulthandler.cancel_dump_traceback_later()
