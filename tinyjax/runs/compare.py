"""Does A beat B? ``tinyjax-report --compare A B``: two sets of runs, paired by seed.

    tinyjax-report --compare runs/mnist_onecycle-ours-2026... runs/mnist_onecycle-default-2026...
    tinyjax-report --compare 'runs/a-*' 'runs/b-*' --plot compare.png

Each side is a ``--seeds`` run directory, a single run directory, or several
(a comma-separated list or a quoted glob, expanded here). A ``--seeds`` run
counts as its members, one value per seed. For the final test accuracy and
the best-epoch test accuracy it reports each side's n, mean, sample std and
95% confidence interval of the mean (Student's t), then the difference A - B:

- **paired** when both sides ran the same seeds (same seed = same init, data
  order and augmentation draws where the variants allow): the mean of the
  per-seed differences with its 95% CI, the paired t-test
  (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``; with n <= 5 its smallest possible two-sided p is
  2 / 2^n >= 0.0625, so it cannot decide alone);
- **unpaired** otherwise: Welch's t-test (``scipy.stats.ttest_ind(...,
  equal_var=False)``) and its CI, said so in the output.

The verdict reads the 95% CI of the difference: "yes" when it lies above 0,
"no" below 0, else "undecided", with the number of seeds per side that would
give the t-test 80% power at alpha 0.05 if the observed mean difference and
spread were the true ones (the noncentral t distribution,
``scipy.stats.nct``; a standard power analysis, e.g. Cohen 1988, ch. 2).
Every statistic comes from scipy.stats.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import warnings
from typing import Sequence

import numpy as np

METRICS = {"test_accuracy": "final test %", "best_epoch_test_accuracy": "best-epoch test %"}
POWER, ALPHA = 0.8, 0.05


def expand(spec: str) -> list[str]:
    """The run directories a side names: comma-separated paths and globs, in sorted glob order.

    Raises:
      FileNotFoundError: a part matches nothing.
    """
    out = []
    for part in filter(None, spec.split(",")):
        matches = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
        if not matches or not all(os.path.isdir(m) for m in matches):
            raise FileNotFoundError(f"--compare: {part!r} is not a run directory (nor a glob matching some)")
        out += matches
    return out


def per_seed(run_dirs: Sequence[str]) -> dict[int, dict]:
    """``{seed: results.json record}`` over run directories and the members of ``--seeds`` runs.

    Raises:
      FileNotFoundError: a run without ``results.json`` (unfinished).
      ValueError: a seed that appears twice on one side.
    """
    records: dict[int, dict] = {}
    for d in run_dirs:
        path = os.path.join(d, "results.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"--compare: {d} has no results.json (unfinished?); finish it with --resume")
        with open(path) as f:
            results = json.load(f)
        if isinstance(results["seed"], list):  # A --seeds run: its members, one record each.
            pairs = per_seed([os.path.join(d, f"seed-{s}") for s in results["seed"]]).items()
        else:
            pairs = [(int(results["seed"]), results)]
        for seed, record in pairs:
            if seed in records:
                raise ValueError(f"--compare: seed {seed} appears twice on one side ({d}); give each seed once")
            records[seed] = record
    return records


@dataclasses.dataclass
class Comparison:
    """One metric's comparison; ``a``/``b`` map seed -> value; intervals are (low, high) at 95%."""

    metric: str
    a: dict[int, float]
    b: dict[int, float]
    paired: bool
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    difference: float
    ci_difference: tuple[float, float]
    t_pvalue: float
    wilcoxon_pvalue: float | None
    seeds_needed: int | None

    @property
    def verdict(self) -> str:
        low, high = self.ci_difference
        if low > 0:
            return "yes"
        if high < 0:
            return "no (B better)"
        n = len(self.a)
        if self.seeds_needed is None:
            return "undecided (no difference at this spread)"
        return (f"undecided; about {max(self.seeds_needed - n, 1)} more seeds per side would decide it "
                f"({self.seeds_needed} in all, {POWER:.0%} power)")


def confidence_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% confidence interval ``(low, high)`` of the mean of ``values`` (Student's t, n - 1
    degrees of freedom; ``scipy.stats.ttest_1samp(...).confidence_interval``); the mean itself for
    one value or equal values."""
    from scipy import stats  # Imported here: ~0.5 s, and a run needs it only for --seeds.
    x = np.asarray(values, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()), float(x.mean())
    interval = stats.ttest_1samp(x, 0.0).confidence_interval(1 - ALPHA)
    return float(interval.low), float(interval.high)


def seeds_needed(effect: float, spread: float, paired: bool, limit: int = 10_000) -> int | None:
    """The smallest n (per side) at which a two-sided t-test at ``ALPHA`` has ``POWER`` against a
    true mean difference ``effect`` with standard deviation ``spread`` (of the paired differences,
    or of each side); None when ``effect`` is 0 or n would exceed ``limit``."""
    from scipy import stats  # Imported here: ~0.5 s, and a run needs it only for --seeds.
    if effect == 0:
        return None
    if spread == 0:
        return 2
    for n in range(2, limit + 1):
        df = n - 1 if paired else 2 * n - 2
        noncentrality = abs(effect) / spread * (np.sqrt(n) if paired else np.sqrt(n / 2))
        critical = stats.t.ppf(1 - ALPHA / 2, df)
        if stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality) >= POWER:
            return n
    return None


def compare(a: dict[int, float], b: dict[int, float], metric: str = "test_accuracy") -> Comparison:
    """The comparison of two ``{seed: value}`` sides (paired when their seeds are the same).

    Raises:
      ValueError: a side with fewer than 2 runs.
    """
    from scipy import stats  # Imported here: ~0.5 s, and a run needs it only for --seeds.
    if min(len(a), len(b)) < 2:
        raise ValueError(f"--compare needs >= 2 runs per side (seeds), got {len(a)} and {len(b)}; "
                         "train more with --seeds")
    paired = sorted(a) == sorted(b)
    xa, xb = (np.array([s[k] for k in sorted(s)], float) for s in (a, b))
    with warnings.catch_warnings():  # Identical values: scipy warns of a zero spread; the p-value is nan/1.
        warnings.simplefilter("ignore", RuntimeWarning)
        if paired:  # Both sorted by the same seeds.
            d = xa - xb
            test = stats.ttest_rel(xa, xb)
            wilcoxon = float(stats.wilcoxon(xa, xb).pvalue) if np.any(d != 0) else 1.0
            spread = float(np.std(d, ddof=1))
        else:
            test = stats.ttest_ind(xa, xb, equal_var=False)
            wilcoxon = None
            spread = float(np.sqrt((np.var(xa, ddof=1) + np.var(xb, ddof=1)) / 2))
        difference = float(xa.mean() - xb.mean())
        if spread == 0:  # No spread (every paired difference, or every value, equal): the interval is a point.
            interval, pvalue = (difference, difference), (0.0 if difference else 1.0)
        else:
            ci = test.confidence_interval(1 - ALPHA)
            interval, pvalue = (float(ci.low), float(ci.high)), float(test.pvalue)
    return Comparison(metric, a, b, paired, confidence_interval(xa), confidence_interval(xb), difference, interval,
                      pvalue, wilcoxon, seeds_needed(difference, spread, paired))


def _side(values: dict[int, float], interval: tuple[float, float]) -> str:
    x = np.array(list(values.values()))
    return f"{x.mean():.2f} ± {np.std(x, ddof=1):.2f} [{interval[0]:.2f}, {interval[1]:.2f}] (n = {len(x)})"


def table(comparisons: Sequence[Comparison], names: tuple[str, str]) -> str:
    """The markdown table of ``comparisons`` (one row per metric) and one line saying how they paired."""
    c0 = comparisons[0]
    how = (f"paired by seed ({', '.join(map(str, sorted(c0.a)))})" if c0.paired else
           f"unpaired (seeds {sorted(c0.a)} against {sorted(c0.b)}): Welch's t-test, no Wilcoxon")
    lines = [f"A = {names[0]}", f"B = {names[1]}", f"{how}; mean ± sample std [95% CI]", "",
             "| metric | A | B | A - B [95% CI] | t-test p | Wilcoxon p | A better than B at 95% |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for c in comparisons:
        wilcoxon = "-" if c.wilcoxon_pvalue is None else f"{c.wilcoxon_pvalue:.3g}"
        lines.append(f"| {METRICS[c.metric]} | {_side(c.a, c.ci_a)} | {_side(c.b, c.ci_b)} | "
                     f"{c.difference:+.2f} [{c.ci_difference[0]:+.2f}, {c.ci_difference[1]:+.2f}] | "
                     f"{c.t_pvalue:.3g} | {wilcoxon} | {c.verdict} |")
    return "\n".join(lines)


def plot(comparisons: Sequence[Comparison], path: str, names: tuple[str, str]) -> None:
    """``path``: per metric, each seed's A and B joined by a line (paired) or side by side, and the
    difference's 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(comparisons) + 1, figsize=(4 * (len(comparisons) + 1), 4))
    for ax, c in zip(axes, comparisons):
        for seed in sorted(set(c.a) | set(c.b)):
            xs, ys = zip(*[(i, s[seed]) for i, s in enumerate((c.a, c.b)) if seed in s])
            ax.plot(xs, ys, "o-" if c.paired else "o", color="gray", alpha=0.6)
        ax.set(xticks=[0, 1], xticklabels=["A", "B"], xlim=(-0.4, 1.4), title=METRICS[c.metric], ylabel="%")
    ax = axes[-1]
    for i, c in enumerate(comparisons):
        low, high = c.ci_difference
        ax.errorbar([i], [c.difference], yerr=[[c.difference - low], [high - c.difference]], fmt="o", capsize=6)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xticks=range(len(comparisons)), xticklabels=[METRICS[c.metric] for c in comparisons],
           xlim=(-0.5, len(comparisons) - 0.5), title="A - B, 95% CI", ylabel="points")
    fig.suptitle(f"A = {os.path.basename(names[0])}   B = {os.path.basename(names[1])}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(a: str, b: str, plot_path: str | None = None) -> str:
    """The table of ``tinyjax-report --compare A B`` (and the plot, with ``plot_path``).

    Raises:
      FileNotFoundError, ValueError: as ``expand``, ``per_seed`` and ``compare``.
    """
    sides = [per_seed(expand(a)), per_seed(expand(b))]  # Each results.json read once.
    comparisons = [compare(*({seed: float(r[metric]) for seed, r in side.items()} for side in sides), metric)
                   for metric in METRICS]
    if plot_path:
        plot(comparisons, plot_path, (a, b))
    return table(comparisons, (a, b))
