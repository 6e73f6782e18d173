"""neuroctl.sweep: one row per grid point, the same table whatever runs it."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from neuroctl.sweep import sweep


def _decay(a, x0, seed):
    # x[k+1] = a x[k] + noise; closed form of the noiseless part checked below
    rng = np.random.default_rng(seed)
    x = x0
    for _ in range(10):
        x = a * x
    return {"x10": x, "noise": float(rng.standard_normal())}


def _records(t):
    return t.to_dict("records") if hasattr(t, "to_dict") else t


def test_rows_follow_the_grid_and_match_the_closed_form():
    rows = _records(sweep(_decay, {"a": [0.5, 0.9], "x0": [1.0, 2.0, 3.0]}, seed=1))
    assert [(r["a"], r["x0"]) for r in rows] == [(a, x) for a in (0.5, 0.9) for x in (1, 2, 3)]
    for r in rows:
        assert r["x10"] == pytest.approx(r["a"] ** 10 * r["x0"], rel=1e-14)
        assert r["noise"] == np.random.default_rng(r["seed"]).standard_normal()
    assert len({r["seed"] for r in rows}) == 6


def test_same_table_on_processes():
    grid = {"a": [0.5, 0.9], "x0": [1.0, 2.0]}
    seq = _records(sweep(_decay, grid, seed=3, table="records"))
    assert _records(sweep(_decay, grid, seed=3, workers=2, table="records")) == seq
    with ProcessPoolExecutor(2) as ex:
        assert _records(sweep(_decay, grid, seed=3, executor=ex, table="records")) == seq


def test_bad_grids_name_the_argument():
    with pytest.raises(TypeError, match="grid"):
        sweep(_decay, [1, 2])
    with pytest.raises(ValueError, match=r"grid\['a'\]"):
        sweep(_decay, {"a": []})
    with pytest.raises(ValueError, match="table"):
        sweep(_decay, {"a": [1]}, table="csv")


def _scalar_plant(a):
    from neuroctl import Plant

    # x[k+1] = a x[k] + u[k], a discrete update (module-level so it pickles by reference)
    return Plant(states=1, inputs=1, dt=0.1, update=lambda x, u: a * x + u, name="scalar")


def _closed_loop_final_state(a, k):
    from neuroctl import linear_controller, simulate

    traj = simulate(_scalar_plant(a), linear_controller([[-k]]), np.array([1.0]), 10)
    return {"x10": float(np.asarray(traj.states)[..., -1, 0].item())}


def test_sweep_of_simulations_matches_the_closed_form_on_workers():
    grid = {"a": [0.9, 1.1], "k": [0.2, 0.5, 0.8]}
    rows = _records(sweep(_closed_loop_final_state, grid, workers=2, table="records"))
    assert rows == _records(sweep(_closed_loop_final_state, grid, table="records"))
    for r in rows:  # u = -k x: x[10] = (a - k)^10 x[0]
        assert r["x10"] == pytest.approx((r["a"] - r["k"]) ** 10, rel=1e-12)
