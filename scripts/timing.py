"""Side-by-side timing for the benchmark scripts in this folder."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable, Mapping


def interleaved_medians(runners: Mapping[Hashable, Callable[[], None]], repeats: int) -> dict[Hashable, float]:
    """Median wall time (seconds) of each warmed-up ``run()`` over ``repeats``
    runs, the runners taking turns so that machine noise hits every row alike."""
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
