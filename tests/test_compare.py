"""tinyjax-report --compare: paired and unpaired comparisons of run sets, against scipy and known answers."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from tinyjax.runs import compare, report

A = [99.30, 99.50, 99.35, 99.36, 99.38]
GAIN = [0.05, 0.10, 0.02, 0.08, 0.04]


def write_run(path, seed, final, best=None):
    os.makedirs(path, exist_ok=True)
    results = {"seed": seed, "test_accuracy": final, "best_epoch_test_accuracy": final if best is None else best}
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump(results, f)
    return str(path)


def write_seeds_run(path, values):
    """A --seeds run directory: results.json with the seed list, one member directory per seed."""
    for seed, value in values.items():
        write_run(path / f"seed-{seed}", seed, value)
    return write_run(path, list(values), float(np.mean(list(values.values()))))


def test_paired_figures_are_scipys_on_fixed_data():
    a = dict(enumerate(A))
    b = {s: v - g for s, v, g in zip(range(5), A, GAIN)}
    c = compare.compare(a, b)
    assert c.paired and c.difference == pytest.approx(0.058)
    test = stats.ttest_rel(A, [v - g for v, g in zip(A, GAIN)])
    assert c.t_pvalue == pytest.approx(test.pvalue) and c.t_pvalue == pytest.approx(0.015338, rel=1e-4)
    assert c.ci_difference == pytest.approx((0.018344, 0.097656), rel=1e-4)
    assert c.wilcoxon_pvalue == pytest.approx(0.0625)  # 2 / 2^5: the smallest two-sided p of n = 5.
    assert c.ci_a == pytest.approx(tuple(stats.ttest_1samp(A, 0).confidence_interval()))
    assert c.verdict == "yes"


def test_a_clear_win_a_loss_and_a_tie():
    rng = np.random.default_rng(0)
    base = {s: 99.0 + rng.normal(0, 0.1) for s in range(5)}
    win = {s: v + 1.0 + rng.normal(0, 0.05) for s, v in base.items()}
    assert compare.compare(win, base).verdict == "yes"
    assert compare.compare(base, win).verdict == "no (B better)"
    tie = compare.compare({s: v + 0.01 * (-1) ** s for s, v in base.items()}, base)
    assert tie.verdict.startswith("undecided") and tie.ci_difference[0] < 0 < tie.ci_difference[1]
    same = compare.compare(base, dict(base))
    assert same.verdict == "undecided (no difference at this spread)" and same.t_pvalue == 1.0


def test_seeds_needed_matches_the_textbook_power_tables():
    # Cohen's d = 1, alpha 0.05 two-sided, power 0.8: 10 pairs (one-sample t), 17 per group (two-sample t).
    assert compare.seeds_needed(1.0, 1.0, paired=True) == 10
    assert compare.seeds_needed(1.0, 1.0, paired=False) == 17
    assert compare.seeds_needed(0.0, 1.0, paired=True) is None
    tie = compare.compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.1, 1: 1.8, 2: 3.05})
    spread = np.std([-0.1, 0.2, -0.05], ddof=1)  # Of the paired differences.
    assert f"about {compare.seeds_needed(tie.difference, spread, True) - 3} more seeds" in tie.verdict


def test_different_seeds_are_compared_unpaired_with_welch():
    a, b = {0: 99.1, 1: 99.3, 2: 99.2}, {5: 98.9, 6: 99.0, 7: 98.8, 8: 99.1}
    c = compare.compare(a, b)
    welch = stats.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    assert not c.paired and c.wilcoxon_pvalue is None and c.t_pvalue == pytest.approx(welch.pvalue)
    assert c.ci_difference == pytest.approx(tuple(welch.confidence_interval()))
    assert "unpaired" in compare.table([c], ("a", "b"))


def test_cli_pairs_a_seeds_run_with_single_runs_and_plots(tmp_path, capsys):
    a = write_seeds_run(tmp_path / "a", dict(enumerate(A)))
    for seed, (value, gain) in enumerate(zip(A, GAIN)):
        write_run(tmp_path / f"b-{seed}", seed, value - gain, best=value)
    png = tmp_path / "compare.png"
    assert report.main(["--compare", a, str(tmp_path / "b-*"), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "paired by seed (0, 1, 2, 3, 4)" in out and png.stat().st_size > 0
    final, best = [line for line in out.splitlines() if line.startswith("| final") or line.startswith("| best")]
    assert final.endswith("| yes |") and "+0.06 [+0.02, +0.10]" in final
    assert "+0.00" in best and "undecided" in best  # The best epochs were equal: no difference.


@pytest.mark.parametrize("b,message", [
    ("b-0", "needs >= 2 runs per side"),
    ("nothing-*", "is not a run directory"),
    ("b-0,b-0", "seed 0 appears twice"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, b, message):
    a = write_seeds_run(tmp_path / "a", {0: 99.0, 1: 99.1})
    write_run(tmp_path / "b-0", 0, 98.0)
    b = ",".join(str(tmp_path / part) for part in b.split(","))
    assert report.main(["--compare", a, b]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --compare") and message in err and "\n" not in err
