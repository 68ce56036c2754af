"""Reference learning rates and momenta for tests/test_schedules.py, from torch.optim.lr_scheduler.

    source .venv/bin/activate && python tests/reference/torch_schedules.py

writes tests/reference/torch_schedules.json next to this file. Needs torch (the CPU wheel,
``pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu``); tinyjax and its tests never
import it. The committed JSON was written with torch 2.13.0+cpu (its ``torch`` field says which).

Each value is ``optimizer.param_groups[0]["lr"]`` (and ``["momentum"]``) read before the k-th optimizer
step (0-based k) of a torch.optim.SGD on one parameter whose scheduler is stepped as a training loop does:

- ``onecycle``: OneCycleLR(**kwargs) on SGD(momentum=0.9) (OneCycleLR overwrites lr and momentum;
  base_momentum 0.85, max_momentum 0.95, its defaults), stepped after every optimizer step;
- ``piecewise``: MultiStepLR(SGD(lr=0.1), milestones=[3, 5, 5], gamma=0.2), stepped once per epoch of
  4 batches (a milestone listed twice decays twice);
- ``cosine``: CosineAnnealingLR(SGD(lr=0.05), T_max=37, eta_min=1e-4), stepped per batch.
"""

import warnings

import torch
from output import write_json  # tests/reference/output.py, beside this script

ONECYCLE = [  # OneCycleLR's arguments, and the steps whose values the test checks.
    (dict(total_steps=9380, max_lr=0.05, pct_start=0.2, div_factor=10, final_div_factor=100,
          anneal_strategy="cos", three_phase=False),
     [0, 1, 2, 1340, 1874, 1875, 1876, 1877, 2344, 2813, 4688, 8441, 9377, 9378, 9379]),
    (dict(total_steps=100, max_lr=0.1, pct_start=0.3, div_factor=25, final_div_factor=1e4,
          anneal_strategy="linear", three_phase=False),
     [0, 1, 14, 24, 29, 30, 45, 89, 98, 99]),
    (dict(total_steps=1000, max_lr=0.02, pct_start=0.25, div_factor=5, final_div_factor=50,
          anneal_strategy="cos", three_phase=True),
     [0, 1, 142, 199, 249, 299, 449, 498, 499, 899, 998, 999]),
    (dict(total_steps=77, max_lr=1.0, pct_start=0.45, div_factor=3, final_div_factor=7,
          anneal_strategy="linear", three_phase=True),
     [0, 1, 13, 33, 34, 36, 68, 75, 76]),
]
PIECEWISE = dict(base_lr=0.1, milestones=[3, 5, 5], gamma=0.2, steps_per_epoch=4, steps=list(range(0, 32, 2)))
COSINE = dict(base_lr=0.05, t_max=37, eta_min=1e-4, steps=[0, 1, 5, 12, 18, 19, 30, 36, 37])


def record(optimizer, scheduler, steps, per, keys=("lr",)):
    """``{key: [value before optimizer step k for k in steps]}``, the scheduler stepped every ``per`` steps."""
    wanted, out = set(steps), {key: [] for key in keys}
    for k in range(max(steps) + 1):
        if k in wanted:
            for key in keys:
                out[key].append(optimizer.param_groups[0][key])
        optimizer.step()
        if (k + 1) % per == 0:
            scheduler.step()
    return out


def sgd(lr, momentum=0.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=momentum)


def main():
    warnings.simplefilter("ignore")  # OneCycleLR past its last step is never reached; no other warnings matter.
    onecycle = []
    for kwargs, steps in ONECYCLE:
        opt = sgd(kwargs["max_lr"], momentum=0.9)
        values = record(opt, torch.optim.lr_scheduler.OneCycleLR(opt, **kwargs), steps, 1, ("lr", "momentum"))
        onecycle.append({"kwargs": kwargs, "steps": steps, **values})
    opt = sgd(PIECEWISE["base_lr"])
    piecewise = {**PIECEWISE, **record(opt, torch.optim.lr_scheduler.MultiStepLR(
        opt, PIECEWISE["milestones"], PIECEWISE["gamma"]), PIECEWISE["steps"], PIECEWISE["steps_per_epoch"])}
    opt = sgd(COSINE["base_lr"])
    cosine = {**COSINE, **record(opt, torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=COSINE["t_max"], eta_min=COSINE["eta_min"]), COSINE["steps"], 1)}
    out = {"generated_by": "python tests/reference/torch_schedules.py", "torch": torch.__version__,
           "onecycle": onecycle, "piecewise": piecewise, "cosine": cosine}
    path = write_json("torch_schedules.json", out)
    print(f"wrote {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
