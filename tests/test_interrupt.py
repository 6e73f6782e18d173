"""A training run killed in the middle of a checkpoint write leaves nothing behind.

A training subprocess is made to stop inside an atomic write (the test hook
``NEUROCTL_TEST_SLOW_WRITE=NAME:K`` holds the K-th write of NAME after its temporary file is
written) and is killed there with SIGKILL, which no ``finally`` can catch: the temporary file is
left, and ``progress.csv`` holds rows logged after the last complete checkpoint. Running the same
command again must sweep the temporary file, resume from the checkpoint, and log every step once.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroctl.train.export import atomic_write_bytes, sweep_temporary_files

ARM = "neuroctl/Arm-v0"
DIFFSIM = dict(
    steps=20,
    seed=1,
    checkpoint_every=5,
    log_every=1,
    hidden=(8,),
    batch=8,
    task_options={"horizon": 10},
    progress=False,
    tensorboard=False,
    analyze=False,
)
PPO = dict(
    algo="ppo",
    steps=1024,
    n_envs=2,
    hidden=(8,),
    checkpoint_every=384,
    algo_kwargs=dict(n_steps=128, batch_size=64, n_epochs=1),
    progress=False,
    tensorboard=False,
    eval_episodes=0,
    analyze=False,
)
RUNS = {
    "diffsim": ("train_diffsim", ARM, DIFFSIM),
    "ppo": ("train_rl", "Pendulum-v1", PPO),
}
SCRIPT = """
import json, sys
import neuroctl.train as t
fn, env_id, kw, out = json.loads(sys.argv[1])
getattr(t, fn)(env_id, out_dir=out, **kw)
"""


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _kill_during_write(run: str, hook: str, out: Path) -> list[str]:
    fn, env_id, kw = RUNS[run]
    env = {**os.environ, "NEUROCTL_TEST_SLOW_WRITE": hook}
    arg = json.dumps([fn, env_id, kw, str(out)])
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, arg],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    name = hook.rpartition(":")[0]
    deadline = time.monotonic() + 240
    seen: dict[str, float] = {}  # temporary file -> when first seen
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            current = _temporaries(out) if out.exists() else []
            seen = {t: seen.get(t, now) for t in current if t.startswith(f".{name}.")}
            # earlier writes of the same file pass in milliseconds; the held one stays
            if any(now - t0 > 1.0 for t0 in seen.values()):
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before the write: {proc.stderr.read().decode()}")
            time.sleep(0.05)
        else:
            pytest.fail("the write of the test hook never started")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return _temporaries(out)


def _steps(out: Path) -> list[int]:
    with open(out / "progress.csv", newline="") as f:
        return [int(float(r["steps"])) for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "run, hook, checkpoint_step",
    [
        ("diffsim", "checkpoint.pt:2", 5),  # killed writing the checkpoint of step 10
        ("diffsim", "run.json:1", None),  # killed before anything else was written
        ("ppo", "checkpoint.zip:2", 384),  # killed writing the checkpoint of step 768
    ],
)
def test_kill_during_a_checkpoint_write_then_rerun_leaves_no_temporary_file(
    run, hook, checkpoint_step, tmp_path
):
    import neuroctl.train as t

    out = tmp_path / "run"
    left = _kill_during_write(run, hook, out)
    name = hook.rpartition(":")[0]
    assert [n for n in left if n.startswith(f".{name}.")], left  # the kill landed in the write
    if checkpoint_step is not None:
        # rows past the checkpoint were logged: a resume must not log them twice
        assert max(_steps(out)) > checkpoint_step
    fn, env_id, kw = RUNS[run]
    result = getattr(t, fn)(env_id, out_dir=out, **kw)
    assert _temporaries(out) == []
    assert result.resumed == (checkpoint_step is not None)
    assert not result.interrupted and result.policy_path is not None
    assert result.steps_done >= kw["steps"]
    steps = _steps(out)
    assert len(steps) == len(set(steps)) and steps == sorted(steps)
    if run == "diffsim":
        assert steps == list(range(1, kw["steps"] + 1))  # every gradient step logged once
    assert [int(float(r["steps"])) for r in result.history] == steps


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # fails inside the write
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_sweep_removes_only_the_temporary_files_of_atomic_writes(tmp_path):
    ours = [".checkpoint.zip.k3j_9x2a.tmp", ".run.json.abcdefgh.tmp"]
    others = ["notes.tmp", ".hidden.tmp", "checkpoint.zip", ".run.json.ABCDEFGH.tmp"]
    for n in ours + others:
        (tmp_path / n).write_text("x")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()
    removed = sweep_temporary_files(tmp_path)
    assert sorted(p.name for p in removed) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + [".dir.abcdefgh.tmp"])
