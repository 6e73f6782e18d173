"""Rendering of the ring road: an RGB image (no display needed) and the space-time diagram."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroctl._json import json_dict

from .dynamics import ring_metrics

__all__ = ["speed_colour", "car_pixels", "render_ring", "space_time_plot", "RingTrajectory"]

#: Speed (m/s) drawn in the fastest colour by default (Flow's speed normalisation).
V_COLOUR_MAX = 15.0


def speed_colour(speeds, v_max: float = V_COLOUR_MAX) -> np.ndarray:
    """Colour of a car by its speed: red (stopped) through yellow to green (``>= v_max``).

    Parameters
    ----------
    speeds : array_like, shape (...,)
        m/s.
    v_max : float
        Speed of the pure green, m/s.

    Returns
    -------
    ndarray of uint8, shape (..., 3)
    """
    t = np.clip(np.asarray(speeds, dtype=float) / v_max, 0.0, 1.0)
    r = np.minimum(1.0, 2.0 * (1.0 - t))
    g = np.minimum(1.0, 2.0 * t)
    return np.round(np.stack([r, g, np.zeros_like(t)], axis=-1) * 220.0).astype(np.uint8)


def car_pixels(positions, ring_length: float, size: int = 400) -> np.ndarray:
    """Pixel (row, column) of each car's centre in :func:`render_ring`'s image.

    Position 0 is at the top; cars drive clockwise.

    Returns
    -------
    ndarray of int, shape (N, 2)
    """
    theta = 2.0 * np.pi * np.asarray(positions, dtype=float) / ring_length
    c, rad = size / 2.0, 0.4 * size
    rows = c - rad * np.cos(theta)
    cols = c + rad * np.sin(theta)
    return np.stack([np.round(rows), np.round(cols)], axis=-1).astype(int)


def render_ring(
    positions,
    speeds,
    ring_length: float,
    *,
    av_indices=(),
    size: int = 400,
    v_max: float = V_COLOUR_MAX,
) -> np.ndarray:
    """Draw the ring (grey road) with cars as disks coloured by :func:`speed_colour`.

    AVs get a black outline. Pure numpy; no display or window is needed.

    Parameters
    ----------
    positions, speeds : array_like, shape (N,)
        m along the ring and m/s.
    ring_length : float
        m.
    av_indices : sequence of int
        Cars to outline as AVs.
    size : int
        Image side in pixels.
    v_max : float
        Speed drawn in pure green, m/s.

    Returns
    -------
    ndarray of uint8, shape (size, size, 3)
    """
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    c = size / 2.0
    r = np.hypot(yy - c + 0.5, xx - c + 0.5)
    rad = 0.4 * size
    img[np.abs(r - rad) <= 0.03 * size] = (170, 170, 170)
    centres = car_pixels(positions, ring_length, size)
    colours = speed_colour(speeds, v_max)
    radius = max(2, int(0.018 * size))
    av = set(int(i) for i in np.atleast_1d(av_indices))
    for i, (row, col) in enumerate(centres):
        lo_r, hi_r = max(row - radius - 2, 0), min(row + radius + 3, size)
        lo_c, hi_c = max(col - radius - 2, 0), min(col + radius + 3, size)
        d2 = (yy[lo_r:hi_r, lo_c:hi_c] - row) ** 2 + (xx[lo_r:hi_r, lo_c:hi_c] - col) ** 2
        patch = img[lo_r:hi_r, lo_c:hi_c]
        if i in av:
            patch[d2 <= (radius + 2) ** 2] = (0, 0, 0)
        patch[d2 <= radius**2] = colours[i]
    return img


def space_time_plot(
    times,
    positions,
    speeds,
    ring_length,
    *,
    ax=None,
    v_max: float | None = None,
    av_indices=(),
    stride: int = 1,
):
    """Space-time diagram: each car's position along the ring against time, coloured by speed.

    A stop-and-go wave shows as red bands travelling backwards.

    Parameters
    ----------
    times : array_like, shape (T,)
        s.
    positions, speeds : array_like, shape (T, N)
        m along the ring, m/s.
    ring_length : float
        m.
    ax : matplotlib Axes, optional
    v_max : float, optional
        Top of the colour scale (default: the largest speed).
    av_indices : sequence of int
        Cars drawn as black lines on top (the AVs).
    stride : int
        Plot every ``stride``-th sample.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    t = np.asarray(times, float)[::stride]
    q = np.asarray(positions, float)[::stride]
    v = np.asarray(speeds, float)[::stride]
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4))
    else:
        fig = ax.figure
    tt = np.broadcast_to(t[:, None], q.shape)
    sc = ax.scatter(
        tt.ravel(),
        q.ravel(),
        c=v.ravel(),
        s=1.0,
        cmap="RdYlGn",
        vmin=0.0,
        vmax=float(v.max()) if v_max is None else v_max,
        rasterized=True,
    )
    for i in np.atleast_1d(av_indices):
        qi = q[:, int(i)].copy()
        qi[1:][np.diff(qi) < 0] = np.nan  # break the line where the car wraps around
        ax.plot(t, qi, color="k", lw=0.8)
    fig.colorbar(sc, ax=ax, label="speed [m/s]")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("position [m]")
    ax.set_ylim(0, float(np.max(ring_length)))
    return fig


@dataclass
class RingTrajectory:
    """A ring-road run: positions, speeds and gaps of all cars over time.

    Attributes
    ----------
    times : ndarray, shape (T+1,)
        s (0 at the end of the warm-up).
    positions, speeds, gaps : ndarray, shape (T+1, N)
        m along the ring, m/s, m (ring order).
    ring_length : float
        m.
    av_indices : ndarray of int
        The AVs.
    failsafe : ndarray of bool, shape (T, n_av)
        When the fail-safe limited an AV.
    label : str
    """

    times: np.ndarray
    positions: np.ndarray
    speeds: np.ndarray
    gaps: np.ndarray
    ring_length: float
    av_indices: np.ndarray
    failsafe: np.ndarray
    label: str = ""
    vehicle_length: float = field(default=5.0, repr=False)

    def metrics(self, *, t_from: float = 0.0, t_to: float | None = None):
        """:func:`~neuroctl.envs.ring_road.dynamics.ring_metrics` over ``t_from <= t <= t_to``."""
        sel = self.times >= t_from - 1e-9
        if t_to is not None:
            sel &= self.times <= t_to + 1e-9
        return ring_metrics(self.speeds[sel], self.gaps[sel], vehicle_length=self.vehicle_length)

    @json_dict
    def to_dict(self) -> dict:
        """Plain-Python dictionary (lists), suitable for JSON."""
        return {
            "label": self.label,
            "times": self.times.tolist(),
            "positions": self.positions.tolist(),
            "speeds": self.speeds.tolist(),
            "gaps": self.gaps.tolist(),
            "ring_length": float(self.ring_length),
            "av_indices": [int(i) for i in self.av_indices],
            "failsafe": self.failsafe.tolist(),
        }

    def plot(self, *, ax=None, stride: int = 5, v_max: float | None = None):
        """Space-time diagram (:func:`space_time_plot`)."""
        fig = space_time_plot(
            self.times,
            self.positions,
            self.speeds,
            self.ring_length,
            ax=ax,
            v_max=v_max,
            av_indices=self.av_indices,
            stride=stride,
        )
        if self.label:
            (fig.axes[0] if ax is None else ax).set_title(self.label)
        return fig

    def __repr__(self) -> str:
        m = self.metrics()
        return (
            f"RingTrajectory({self.label!r}, {len(self.times) - 1} steps, "
            f"{self.speeds.shape[-1]} cars, L={self.ring_length:g} m, "
            f"mean_speed={m.mean_speed:.3f} m/s, speed_std={m.speed_std:.3f} m/s, "
            f"min_gap={m.min_gap:.3f} m, failsafe_steps={int(self.failsafe.any(-1).sum())})"
        )
