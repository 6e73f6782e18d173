"""neuroctl.parallel and the executor= of check_closed_loop: the answers of the sequential run."""

import math
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from neuroctl import linear_controller
from neuroctl.parallel import Failed, map_tasks, task_seeds
from neuroctl.verify import Constraint, always, check_closed_loop
from neuroctl.verify import closed_loop as cl
from tests.test_closed_loop import _linear_plant, _rotation


def _square_plus(x, k):
    return x * x + k


def _dies_first_time(marker, x):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return 2 * x


def test_results_in_submission_order_with_closures_on_a_process_pool():
    offset = 7.0
    args = [(float(x),) for x in range(12)]
    seq = map_tasks(lambda x: math.sqrt(x) + offset, args)
    assert seq == [math.sqrt(x) + offset for x in range(12)]
    assert map_tasks(lambda x: math.sqrt(x) + offset, args, workers=2) == seq
    with ProcessPoolExecutor(max_workers=2) as ex:
        assert map_tasks(_square_plus, [(x, 1) for x in range(9)], executor=ex) == [
            x * x + 1 for x in range(9)
        ]


def test_a_killed_worker_is_retried_and_the_answer_unchanged(tmp_path):
    marker = str(tmp_path / "died")
    out = map_tasks(_dies_first_time, [(marker, x) for x in range(6)], workers=2)
    assert os.path.exists(marker) and out == [2 * x for x in range(6)]
    # without a retry the lost tasks are marked, never given a made-up value
    marker2 = str(tmp_path / "died2")
    out = map_tasks(_dies_first_time, [(marker2, x) for x in range(4)], workers=2, retries=0)
    assert any(isinstance(o, Failed) for o in out)
    assert all(o == 2 * i for i, o in enumerate(out) if not isinstance(o, Failed))


def test_an_error_of_the_task_itself_propagates():
    with pytest.raises(ZeroDivisionError):
        map_tasks(lambda x: 1 / x, [(1,), (0,)], workers=2)


def test_task_seeds_are_per_task_and_independent():
    a, b = task_seeds(5, 8), task_seeds(5, 3)
    assert a[:3] == b and len(set(a)) == 8
    draws = [np.random.default_rng(s).standard_normal(2000) for s in a]
    c = np.corrcoef(draws)
    assert np.abs(c[np.triu_indices(8, 1)]).max() < 0.1  # 4.5 sigma of n=2000


def test_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="executor"):
        map_tasks(abs, [(1,)], executor="ray")
    with pytest.raises(ValueError, match="workers"):
        map_tasks(abs, [(1,)], workers=0)
    with pytest.raises(ValueError, match="workers"):
        check_closed_loop(*_disc_problem(), steps=6, workers=-1)


def _disc_problem():
    A, B, lo, hi = _rotation()
    lo, hi = np.array([0.7, -0.3]), np.array([1.3, 0.3])
    r = math.hypot(1.3, 0.3) * 1.02
    disc = Constraint(lambda x: x[..., 0] ** 2 + x[..., 1] ** 2 - r**2, name="disc")
    exact = _linear_plant(A, B, math.pi / 4, exact_map=True)
    return exact, linear_controller([[0.0, 0.0]]), lo, hi, always(disc)


def _same_answer(a, b):
    assert a.status == b.status
    for k in ("boxes_analysed", "boxes_split", "boxes_proved"):
        assert a.stats[k] == b.stats[k]
    np.testing.assert_array_equal(a.box_lower, b.box_lower)
    np.testing.assert_array_equal(a.box_upper, b.box_upper)


def test_closed_loop_branch_and_bound_on_workers_gives_the_sequential_answer():
    seq = check_closed_loop(*_disc_problem(), steps=6, batch=4)
    assert seq.status == "holds" and seq.stats["boxes_split"] > 0
    _same_answer(check_closed_loop(*_disc_problem(), steps=6, batch=4, workers=2), seq)
    with ProcessPoolExecutor(max_workers=2) as ex:
        _same_answer(check_closed_loop(*_disc_problem(), steps=6, batch=4, executor=ex), seq)


def test_closed_loop_verdict_survives_a_killed_worker(tmp_path, monkeypatch):
    seq = check_closed_loop(*_disc_problem(), steps=6, batch=4)
    marker = str(tmp_path / "died")
    real = cl._propagate_piece

    def piece(*args):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return real(*args)

    monkeypatch.setattr(cl, "_propagate_piece", piece)
    res = check_closed_loop(*_disc_problem(), steps=6, batch=4, workers=2)
    assert os.path.exists(marker)
    _same_answer(res, seq)
