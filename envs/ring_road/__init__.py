"""Single-lane ring road (Sugiyama 2008; Flow's wave-attenuation ring) as ``neuroctl/RingRoad-v0``.

Pure dynamics in :mod:`.dynamics`, the Gymnasium environments in :mod:`.env`, classical AV
controllers (IDM, FollowerStopper, PI with saturation) in :mod:`.controllers`, rendering and the
space-time diagram in :mod:`.render`.
"""

from .dynamics import (
    HEADWAY_SCALE,
    SPEED_SCALE,
    IDMParams,
    OVMParams,
    Params,
    RingMetrics,
    acceleration_noise,
    av_indices,
    hinge_flux,
    idm_acceleration,
    optimal_velocity,
    ovm_acceleration,
    ring_accelerations,
    ring_gaps,
    ring_metrics,
    ring_observation,
    ring_plant,
    ring_post_step,
    ring_reward,
    ring_rhs,
    ring_step_info,
    ring_trajectory_metrics,
    uniform_flow_equilibrium,
)

__all__ = [
    "HEADWAY_SCALE",
    "SPEED_SCALE",
    "IDMParams",
    "OVMParams",
    "Params",
    "RingMetrics",
    "acceleration_noise",
    "av_indices",
    "hinge_flux",
    "idm_acceleration",
    "optimal_velocity",
    "ovm_acceleration",
    "ring_accelerations",
    "ring_gaps",
    "ring_metrics",
    "ring_trajectory_metrics",
    "ring_observation",
    "ring_plant",
    "ring_post_step",
    "ring_reward",
    "ring_rhs",
    "ring_step_info",
    "uniform_flow_equilibrium",
]
