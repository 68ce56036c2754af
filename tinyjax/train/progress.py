"""The step loop's per-step hook: the ``--profile`` trace, a stop asked for (a signal), a non-finite
step with ``--on-nan stop`` (checked at host syncs) and the tqdm progress bar."""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from tinyjax.distributed import hosts, parallel

SYNC_EVERY = 25  # Steps between host syncs of the step loop (progress bar, non-finite check).


def summarize(totals: dict[str, jax.Array]) -> tuple[float, float]:
    """(accuracy in %, mean loss) from summed metrics (of all replicas together, when they have a replica axis)."""
    totals = jax.device_get(totals)
    count = max(int(np.sum(totals["count"])), 1)
    return 100.0 * float(np.sum(totals["correct"])) / count, float(np.sum(totals["loss_sum"])) / count


class Progress:
    """The step loop's hook (``epoch_driver``'s ``on_step``): ``hook(done, carry)`` first (``--profile``),
    a stop asked by ``should_stop``, a non-finite step with ``--on-nan stop`` (at host syncs), and the
    tqdm bar."""

    def __init__(self, steps: int, start: int, description: str, should_stop, stop_on_nan: bool,
                 placement: parallel.Placement, active: Sequence[bool] | None = None, hook=None):
        self.steps, self.should_stop, self.stop_on_nan, self.placement = steps, should_stop, stop_on_nan, placement
        self.hook = hook
        # Replicas stopped early (--early-stop) train on, their updates thrown away: their steps never stop the epoch.
        self.active = None if active is None else jnp.asarray(np.asarray(active, np.int32))
        self.bar = tqdm.tqdm(total=steps, initial=start, desc=description, leave=False, unit="step",
                             disable=not sys.stderr.isatty() or not hosts.primary())

    def __enter__(self) -> Callable[[int, Any], bool]:
        return self.on_step

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def on_step(self, done: int, carry) -> bool:
        if self.hook is not None:
            self.hook(done, carry)
        sync = done % SYNC_EVERY == 0 or done == self.steps
        # With several processes should_stop is a collective: at host syncs only.
        if self.should_stop is not None and (sync or self.placement.processes == 1) and self.should_stop():
            return True
        if not sync:
            return False
        bad = carry.totals["nonfinite"] if self.active is None else carry.totals["nonfinite"] * self.active
        if self.stop_on_nan and int(jnp.max(bad)):  # A host sync: not every step.
            return True
        if not self.bar.disable:
            self.bar.update(done - self.bar.n)
            accuracy, loss = summarize(carry.totals)
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.2f}%", refresh=False)
        return False
