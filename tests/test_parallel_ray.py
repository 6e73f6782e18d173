"""The same answers on a local Ray instance (ray.init(num_cpus=2)), a killed worker included."""

import os

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "neuroctl[dist]")')

from neuroctl.parallel import RayExecutor, map_tasks  # noqa: E402
from neuroctl.sweep import sweep  # noqa: E402
from neuroctl.verify import check_closed_loop  # noqa: E402
from tests.test_parallel import _dies_first_time, _disc_problem, _same_answer  # noqa: E402
from tests.test_sweep import _decay, _records  # noqa: E402


@pytest.fixture(scope="module")
def ray_executor():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield RayExecutor()
    finally:
        ray.shutdown()


def test_map_in_order_and_a_killed_worker_retried_by_ray(ray_executor, tmp_path):
    marker = str(tmp_path / "died")
    out = map_tasks(_dies_first_time, [(marker, x) for x in range(5)], executor=ray_executor)
    assert os.path.exists(marker) and out == [0, 2, 4, 6, 8]


def test_closed_loop_and_sweep_on_ray_give_the_sequential_answers(ray_executor):
    seq = check_closed_loop(*_disc_problem(), steps=6, batch=4)
    _same_answer(check_closed_loop(*_disc_problem(), steps=6, batch=4, executor=ray_executor), seq)
    grid = {"a": [0.5, 0.9], "x0": [1.0, 2.0]}
    rows = _records(sweep(_decay, grid, seed=3, executor=ray_executor, table="records"))
    assert rows == _records(sweep(_decay, grid, seed=3, table="records"))
    assert np.isfinite([r["x10"] for r in rows]).all()
