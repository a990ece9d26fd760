"""Two networks trained at once from two Python threads (pytest-benchmark).

Group ``two-threads`` holds one row per measurement of
:mod:`two_threads_overlap` (A alone, B alone, A then B, A and B at once: fits
of 784-256-10 networks on one OpenMP thread each), each timed over 3 rounds
on fresh networks.  ``extra_info`` holds, for the median round,
``cpu_per_wall`` (the process's CPU time over wall time: 2 when two cores are
busy) and ``others_cpu_s`` (what other processes ran meanwhile: near 0 on an
idle machine, else the timings mean little).  The ``A and B at once`` row also
records ``overlap`` = (t_A + t_B) / t_at_once from this session's ``alone``
rows (2 = fully parallel, 1 = serialized).  Nothing is asserted about speed;
the fits made at once must end bitwise where fits made one after the other do.
"""
import pytest

from two_threads_overlap import MODES, make_jobs, params, run_mode

#: Median wall seconds of the rows measured so far in this session.
_MEDIANS = {}


@pytest.fixture(scope="module")
def jobs():
    return make_jobs()


@pytest.mark.parametrize("mode", MODES)
def test_two_threads(benchmark, jobs, mode):
    rounds = []  # (wall, cpu, others' cpu) of each round

    def one_round():
        rounds.append(run_mode(mode, jobs)[0])

    benchmark.group = "two-threads"
    benchmark.extra_info.update(mode=mode, threads_per_network=1)
    benchmark.pedantic(one_round, rounds=3, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable
        return
    wall, cpu, others = sorted(rounds)[(len(rounds) - 1) // 2]
    benchmark.extra_info.update(cpu_per_wall=cpu / wall, others_cpu_s=others)
    _MEDIANS[mode] = benchmark.stats.stats.median
    if mode == "A and B at once" and {"A alone", "B alone"} <= set(_MEDIANS):
        benchmark.extra_info["overlap"] = (
            (_MEDIANS["A alone"] + _MEDIANS["B alone"]) / _MEDIANS[mode])


def test_fits_at_once_match_fits_in_turn():
    """Small versions of the benchmark's jobs: training them from two threads at once
    gives bitwise the parameters that training them one after the other gives."""
    small = make_jobs(sizes=(64, 32, 10), samples=500, epochs=2)
    _, in_turn = run_mode("A then B", small)
    _, at_once = run_mode("A and B at once", small)
    assert [params(n) for n in at_once] == [params(n) for n in in_turn]
