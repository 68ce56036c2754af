"""Reference trajectories for tests/test_optimizers.py, from torch.optim (float64).

    source .venv/bin/activate && python tests/reference/torch_optimizers.py

writes tests/reference/torch_optimizers.json next to this file. Needs torch (the CPU wheel,
``pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu``); tinyjax and its tests never
import it. The committed JSON was written with torch 2.13.0+cpu (its ``torch`` field says which).

The problem: loss(p) = sum(0.5 * a * p^2 + b * p) on four float64 parameters from ``p0``, 12 optimizer
steps, epochs of 3 steps. Each case names its optimizer and schedule with tinyjax's config fields
(``OptimConfig``, ``ScheduleConfig``), so the test builds the same run from the JSON; here they become
torch.optim.SGD / Adam / AdamW and an lr scheduler:

- ``onecycle``: OneCycleLR(max_lr, total_steps=12, pct_start, div_factor, final_div_factor), stepped per
  batch; it overwrites lr and cycles momentum (SGD) or beta1 (Adam, AdamW) between 0.95 and 0.85 (it does
  so for SGD built with momentum 0 too);
- ``constant``: no scheduler, the optimizer's lr;
- ``piecewise``: MultiStepLR(milestones, gamma) stepped once per epoch of 3 batches;
- ``cosine``: CosineAnnealingLR(T_max=12, eta_min=min_lr) stepped per batch.

``params`` is where the optimizer left the parameters after the 12 steps. A case with
``bn_bias_lr_scale`` K takes the last parameter as a BatchNorm bias (tinyjax's tree: ``{"conv": {"kernel":
p[:2], "bias": p[2:3]}, "bn": {"bias": p[3:]}}``) in a second param group at lr K * lr and weight decay
wd / K, as airbench94 does; MultiStepLR keeps the two groups' ratio.
"""


import torch
from output import write_json  # tests/reference/output.py, beside this script

A = [1.0, 2.0, 0.5, 3.0]
B = [0.3, -0.2, 0.1, -0.4]
P0 = [0.5, -1.0, 2.0, 0.25]
STEPS, STEPS_PER_EPOCH = 12, 3
ONECYCLE = {"name": "onecycle", "max_lr": 0.1, "pct_start": 0.25, "div_factor": 10, "final_div_factor": 100}
CONSTANT = {"name": "constant"}
PIECEWISE = {"name": "piecewise", "milestones": [1, 3], "gamma": 0.5}
COSINE = {"name": "cosine", "min_lr": 0.01}

CASES = [  # name, OptimConfig fields, ScheduleConfig fields
    ("sgd_onecycle_wd", {"name": "sgd", "lr": 0.001, "weight_decay": 0.01}, ONECYCLE),
    ("sgd_nesterov_onecycle", {"name": "sgd", "lr": 0.001, "momentum": 0.9, "nesterov": True}, ONECYCLE),
    ("sgd_const_momentum_wd", {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}, CONSTANT),
    ("adam_onecycle_wd", {"name": "adam", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.05}, ONECYCLE),
    ("adamw_onecycle_wd", {"name": "adamw", "lr": 0.02, "momentum": 0.9, "weight_decay": 0.05}, ONECYCLE),
    ("adam_const", {"name": "adam", "lr": 0.01, "momentum": 0.8, "beta2": 0.99, "eps": 1e-6}, CONSTANT),
    ("sgd_piecewise_momentum_wd", {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}, PIECEWISE),
    ("sgd_cosine_nesterov_wd", {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                "weight_decay": 1e-3}, COSINE),
    ("sgd_piecewise_bn_bias_lr_scale", {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                        "weight_decay": 1e-2, "bn_bias_lr_scale": 4.0}, PIECEWISE),
]


def optimizer(params, optim):
    lr, wd, momentum = optim["lr"], optim.get("weight_decay", 0.0), optim.get("momentum", 0.0)
    if optim["name"] == "sgd":
        scale = optim.get("bn_bias_lr_scale", 1.0)
        groups = [{"params": params[:-1]}, {"params": params[-1:], "lr": lr * scale, "weight_decay": wd / scale}]
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=optim.get("nesterov", False),
                               weight_decay=wd)
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optim["name"]]
    # tinyjax's AdamW has no default decay of its own: pass the config's (0 when absent), as the test does.
    return kind(params, lr=lr, betas=(momentum, optim.get("beta2", 0.999)), eps=optim.get("eps", 1e-8),
                weight_decay=wd)


def scheduler(opt, schedule):
    """(scheduler or None, steps between its step() calls)."""
    name = schedule["name"]
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=schedule["max_lr"], total_steps=STEPS, pct_start=schedule["pct_start"],
            div_factor=schedule["div_factor"], final_div_factor=schedule["final_div_factor"]), 1
    if name == "constant":
        return None, 1
    if name == "piecewise":
        return torch.optim.lr_scheduler.MultiStepLR(opt, schedule["milestones"], schedule["gamma"]), STEPS_PER_EPOCH
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS, eta_min=schedule["min_lr"]), 1
    raise ValueError(name)


def trajectory(optim, schedule):
    a, b = torch.tensor(A, dtype=torch.float64), torch.tensor(B, dtype=torch.float64)
    parts = [torch.tensor(P0[i:j], dtype=torch.float64, requires_grad=True) for i, j in ((0, 3), (3, 4))]
    opt = optimizer(parts, optim)
    sched, every = scheduler(opt, schedule)
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        p = torch.cat(parts)
        torch.sum(0.5 * a * p ** 2 + b * p).backward()
        opt.step()
        if sched is not None and step % every == 0:
            sched.step()
    return torch.cat(parts).detach().tolist()


def main():
    torch.set_default_dtype(torch.float64)
    cases = [{"name": name, "optim": optim, "schedule": schedule, "params": trajectory(optim, schedule)}
             for name, optim, schedule in CASES]
    out = {"generated_by": "python tests/reference/torch_optimizers.py", "torch": torch.__version__,
           "a": A, "b": B, "p0": P0, "steps": STEPS, "steps_per_epoch": STEPS_PER_EPOCH, "cases": cases}
    path = write_json("torch_optimizers.json", out)
    print(f"wrote {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
