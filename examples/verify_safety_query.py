"""Is there any observation in this range that makes the arm controller command something dangerous?

The controller is the shipped ReLU policy of ``neuroctl/Arm-v0`` (a fixed-seed ``neuroctl.mlp`` if
it is not available). Near the target and almost at rest, a large torque is dangerous. For each
torque limit we ask ``neuroctl.verify.check`` for a proof that ``|u| <= limit`` on the whole
observation box, or a counterexample (an observation and the torque it produces).
"""

from dataclasses import dataclass

import numpy as np
import torch

import neuroctl
from neuroctl.verify import Spec, check, output_bounds


@dataclass
class Args:
    error: float = 0.05  # |target - θ| (rad)
    omega: float = 0.2  # |ω| (rad/s)
    limits: tuple = (8.0, 2.0, 0.5)  # torque limits to check (N m)
    timeout: float = 20.0
    seed: int = 0


args = Args()
torch.manual_seed(args.seed)
try:
    policy = neuroctl.pretrained("neuroctl/Arm-v0")
    source = "pretrained neuroctl/Arm-v0 policy"
except Exception:  # the shipped policy is optional
    policy = neuroctl.mlp(4, 1, hidden=(32, 32), activation="relu")
    source = "fixed-seed mlp"

# observation y = [target - θ, ω, sin θ, cos θ] with θ within `error` of a target at 0
s = np.sin(args.error)
lower = np.array([-args.error, -args.omega, -s, np.cos(args.error)])
upper = np.array([args.error, args.omega, s, 1.0])
print(f"controller: {source}")
print(f"observation box: lower={lower.round(4)}, upper={upper.round(4)}")
print(f"torque bounds (linear relaxation): {output_bounds(policy, lower, upper)}")

for limit in args.limits:
    spec = Spec.output_range(1, lower=-limit, upper=limit, name=f"|u| <= {limit}")
    r = check(policy, lower, upper, spec, timeout=args.timeout, seed=args.seed)
    if r.status == "holds":
        print(
            f"|u| <= {limit}: PROVED for every observation in the box "
            f"(margin >= {r.margin:.4g}, {r.stats['boxes']} boxes, {r.time:.2f} s)"
        )
    elif r.status == "violated":
        print(
            f"|u| <= {limit}: VIOLATED at observation {r.counterexample.round(4)} -> "
            f"u = {r.output[0]:.4f} N m (re-checked in float64, {r.time:.2f} s)"
        )
    else:
        print(
            f"|u| <= {limit}: unknown after {r.time:.1f} s (proven margin >= {r.lower_bound:.4g})"
        )
