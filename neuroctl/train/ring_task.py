"""Former home of the ring's diffsim task: now :mod:`neuroctl.envs.ring_road.task`."""

from neuroctl.envs.ring_road.task import ring_task, ring_wave_metrics, warm_up

__all__ = ["ring_task", "ring_wave_metrics", "warm_up"]
