"""``--grid ... --halving ETA``: a grid that prunes itself (successive halving).

    python -m experiments.mnist_mlp --variant 2hl_50_v2 --epochs 27 --val-split 5000 --halving 3 \\
        --grid lr=3e-4,1e-3,3e-3 weight_decay=0,1e-4,1e-3 label_smoothing=0,0.1,0.2

Successive halving (Jamieson and Talwalkar 2016, arXiv:1502.07943), the inner
loop of Hyperband (Li et al. 2018, arXiv:1603.06560): every point starts; at
each rung the points still training are ranked by the validation metric of
their epoch at the rung (``--best-metric``; never the test set), the best
``n // ETA`` (at least one) go on, the others stop there. The rungs are
Hyperband's most aggressive bracket (``rungs``): 27 points, 27 epochs, ETA 3:
after epochs 1, 3 and 9, with 27, 9, 3, then 1 point training. Each point
keeps its full-length schedule. The points train with ``--on-nan skip``: one
diverging point must not end the whole vmapped program (again on every
``--resume``); it is ranked by what it reaches.

Rung-synchronous: every point still training trains to the rung and pauses
there, saved (``pause_members``); the pruned ones are finished where they
paused (``finish_paused``); the kept ones resume as a new, smaller program (vmapped
where they share one, else one after another, pruned alike). ``scripts/bench_halving.py`` measures
that against holding the pruned points in the program. The search directory
``<out>/<experiment>-<variant>-halving-<timestamp>/`` holds ``halving.json`` (configs, rungs, each
rung's decision), ``point-<k>/`` (normal run directories; ``results.json`` gains ``epochs_trained``
and ``halving``: rank, rung, ranking value), ``halving.md`` (the grid's table in rank order) and
``halving.png``. Decisions are recomputed from the points' records (as process 0 reads them), so
``--resume SEARCH_DIR`` after SIGINT or SIGTERM makes the same ones and ends bit for bit as the
uninterrupted search. See docs/seeds-and-grids.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from typing import Callable, NamedTuple, Sequence

from tinyjax import runs
from tinyjax.config import Config, ConfigError, best_metric, from_dict
from tinyjax.flags import field, flag
from tinyjax.distributed import hosts
from tinyjax.data.dataset import Dataset
from tinyjax.train import replicas
from tinyjax.train.loop import finish_paused, pause_members, train_members
from tinyjax.train.halving_rule import check, keep, order, rungs
from tinyjax.train.inputs import inputs_of, resolve_inputs
from tinyjax.train.prepare import with_inputs
from tinyjax.train.seeds import latest_position
from tinyjax.validation import validate

SEARCH_FILE = "halving.json"
PRINT = functools.partial(print, flush=True)


def is_search(path: str) -> bool:
    """Whether ``path`` is a ``--halving`` search directory (holds ``halving.json``)."""
    return os.path.isfile(os.path.join(path, SEARCH_FILE))


def train_halving(configs: Sequence[Config], eta: int, fields: Sequence[str] = (), *,
                  print_fn: Callable[[str], None] = PRINT, model=None, data: Dataset | None = None) -> list[str]:
    """Successive halving over a grid's points (``configs``, e.g. ``tinyjax.grid.expand``'s), each
    validated and the search checked (``check``) before anything trains; ``fields``: the grid's
    fields, the table's columns. ``model`` and ``data``: your own model and data for every point, as
    ``train_and_evaluate`` takes them (passed again to ``search`` to resume). Returns the points' run
    directories in rank order (the winner first); the search directory is their parent.

    Raises:
      ConfigError: a bad point or a search that cannot rank or prune (one line, before anything
        trains); as ``search``.
    """
    configs = [with_inputs(c, model, data) for c in configs]
    for config in configs:
        validate(config, model, data)
    check(configs, eta)
    return search(start(configs, eta, [flag(field(f)) for f in fields], model=model, data=data), print_fn,
                  model=model, data=data)


def start(configs: Sequence[Config], eta: int, fields: Sequence[str], *, model=None,
          data: Dataset | None = None) -> str:
    """Creates the search directory with its ``halving.json`` (``fields``: the grid's flags, the
    table's columns; the configs saved with ``--on-nan skip``); returns its path. Call ``check`` first.

    Raises:
      ConfigError: the directory cannot be created under ``--out``.
    """
    configs = [dataclasses.replace(x, on_nan="skip") for x in configs]  # See the module docstring.
    c = configs[0]
    hosts.together(lambda: runs.check_writable(c.out))
    _, info, net = resolve_inputs(c, model, data)  # The first point's data and layer table.
    path = runs.create(dataclasses.replace(c, variant=f"{c.variant}-halving"), net, info)
    _write(path, {"eta": eta, "epochs": c.epochs, "rungs": rungs(c.epochs, len(configs), eta),
                  "metric": best_metric(c), "mode": c.checkpoint.best_mode, "fields": list(fields),
                  "points": [f"point-{k}" for k in range(len(configs))],
                  "labels": replicas.differences(configs), "decisions": [], "wall_time_s": 0.0,
                  "configs": [dataclasses.asdict(x) for x in configs]})
    hosts.sync("tinyjax: search created")  # The others read halving.json next.
    return path


def resume(search_dir: str, rest: Sequence[str], print_fn: Callable[[str], None] = PRINT) -> list[str]:
    """Continues an interrupted search (``search``).

    Raises:
      ConfigError: other flags given (a search resumes as it began), or not a search directory.
    """
    if rest:
        raise ConfigError(f"--resume {search_dir} continues a --halving search as it began; drop "
                          f"{' '.join(rest)}.")
    if not is_search(search_dir):
        raise ConfigError(f"--resume {search_dir}: no {SEARCH_FILE}, not a --halving search directory.")
    return search(search_dir, print_fn)


def search(search_dir: str, print_fn: Callable[[str], None] = PRINT, *, model=None,
           data: Dataset | None = None) -> list[str]:
    """Runs (or continues) the search in ``search_dir`` to its end; returns the points' run
    directories in rank order (the winner first) and writes ``halving.md``. ``model``, ``data``: as
    ``train_halving``'s.

    Raises:
      as ``tinyjax.train.train_members``; ``Interrupted`` leaves a search that ``--resume`` continues.
    """
    meta, started = _read(search_dir), time.perf_counter()
    configs = [from_dict(c) for c in meta["configs"]]
    dirs = [os.path.join(search_dir, p) for p in meta["points"]]
    eta, metric, mode, elapsed = meta["eta"], meta["metric"], meta["mode"], meta["wall_time_s"]
    print_fn = hosts.printer(print_fn)
    print_fn(f"halving: {len(configs)} points, ETA {eta}, rungs at epochs {meta['rungs']} by {metric} "
             f"(--on-nan skip: a diverging point does not stop the others) -> {search_dir}")
    alive, decisions = list(range(len(configs))), []
    inputs = inputs_of(configs, model, data)  # Each dataset read and each model built once.
    for rung in meta["rungs"][:-1]:
        _advance(search_dir, configs, dirs, alive, rung, print_fn, inputs=inputs)
        values = _agreed(lambda: [runs.read_metrics(dirs[k])[rung - 1][metric] for k in alive])
        value = dict(zip(alive, values))
        ranked = [alive[i] for i in order(values, mode)]
        kept, pruned = ranked[:keep(len(alive), eta)], ranked[keep(len(alive), eta):]
        _finish_paused(search_dir, configs, dirs, sorted(pruned), rung, print_fn, inputs=inputs)
        for rank, k in enumerate(ranked, 1):
            if k in pruned:
                _mark(dirs[k], meta, rank, rung, value[k])
        decisions.append({"epoch": rung, "ranked": ranked, "values": [value[k] for k in ranked],
                          "kept": sorted(kept), "pruned": sorted(pruned)})
        meta.update(decisions=decisions, wall_time_s=elapsed + time.perf_counter() - started)
        _write(search_dir, meta)
        labels = meta["labels"]
        print_fn(f"halving: after epoch {rung}, kept {len(kept)} of {len(alive)} by {metric}: "
                 + "; ".join(f"{labels[k]} ({value[k]:.4g})" for k in kept))
        alive = sorted(kept)
    _advance(search_dir, configs, dirs, alive, None, print_fn, inputs=inputs)
    values = _agreed(lambda: [runs.read_metrics(dirs[k])[-1][metric] for k in alive])
    value = dict(zip(alive, values))
    final = [alive[i] for i in order(values, mode)]
    for rank, k in enumerate(final, 1):
        _mark(dirs[k], meta, rank, None, value[k])
    ranking = final + [k for d in reversed(decisions) for k in d["ranked"] if k in d["pruned"]]
    meta.update(ranking=ranking, wall_time_s=elapsed + time.perf_counter() - started)
    _write(search_dir, meta)
    from tinyjax.runs import report

    ranked_dirs = [dirs[k] for k in ranking]
    table = report.table(ranked_dirs, meta["fields"])
    if hosts.primary():
        runs.write_text(os.path.join(search_dir, "halving.md"), table + "\n")
        from tinyjax.runs import plots

        c = configs[0]
        plots.halving([runs.read_metrics(d) for d in dirs], metric, meta["rungs"], ranking, meta["labels"],
                      os.path.join(search_dir, "halving.png"), f"{c.experiment} {c.variant}: successive halving, "
                      f"ETA {eta}, {meta['epochs']} epochs")
    print_fn(f"{table}\n\nhalving: winner {meta['labels'][ranking[0]]} ({metric} {value[ranking[0]]:.4g} "
             f"after {meta['epochs']} epochs), {meta['wall_time_s'] / 60:.1f} min -> {search_dir}/halving.md")
    return ranked_dirs


def _agreed(read: Callable[[], object]):
    """``read()`` as process 0 sees the shared folder, on every process (JSON through ``hosts.agree``), so
    that every process makes the same decisions even where its view of the files lags."""
    return json.loads(hosts.agree(json.dumps(read() if hosts.primary() else None)))


class Status(NamedTuple):
    """Where a point stands: its latest checkpoint ``(epoch, position)`` (None: none yet) and whether
    it is finished (holds ``results.json``)."""

    position: tuple[int, int] | None
    finished: bool


def _status(indices: Sequence[int], configs, dirs) -> dict[int, Status]:
    """Each point's ``Status``, as process 0 sees them."""
    seen = _agreed(lambda: [[latest_position(dirs[k], configs[k]), os.path.exists(os.path.join(dirs[k], "results.json"))]
                            for k in indices])
    return {k: Status(None if p is None else tuple(p), done) for k, (p, done) in zip(indices, seen)}


def _programs(indices: Sequence[int], configs: Sequence[Config], status: dict, inputs) -> list[list[int]]:
    """Batches of points that train together: those that share a program (``replicas.groups``), are
    vmapped (``--replicas``, on ``inputs``: each point's ``tinyjax.train.inputs.Inputs``) and stand at
    one checkpoint (``status``); one point each otherwise."""
    batches = []
    for group in replicas.groups([configs[i] for i in indices]):
        members = [indices[j] for j in group]
        net, info = inputs[members[0]].net, inputs[members[0]].info
        together = len(members) > 1 and replicas.resolve(configs[members[0]].replicas, net, info.image_shape) == "vmap" \
            and len({status[k].position for k in members}) == 1
        batches.extend([members] if together else [[k] for k in members])
    return batches


def _advance(search_dir: str, configs, dirs, alive: Sequence[int], until: int | None, print_fn, *,
             inputs) -> None:
    """Trains the ``alive`` points to epoch ``until`` and pauses them there (None: to their end,
    finished); points already there or beyond (a resumed search) are left as they are, points never
    saved start afresh."""
    status = _status(alive, configs, dirs)
    for batch in _programs(alive, configs, status, inputs):
        position, batch_dirs = status[batch[0]].position, [dirs[k] for k in batch]
        if until is None and all(status[k].finished for k in batch):
            continue
        if until is not None and position is not None and position >= (until, 0):
            continue
        if position is None and hosts.primary():
            for d in batch_dirs:  # A point made before its first save holds nothing to keep.
                shutil.rmtree(d, ignore_errors=True)
        members, where = [configs[k] for k in batch], dict(
            resume=None if position is None else batch_dirs, run_dirs=batch_dirs if position is None else None,
            group_dir=search_dir, model=inputs[batch[0]].net, dataset=inputs[batch[0]].source)
        if until is None:
            train_members(members, print_fn, **where)
        else:
            pause_members(members, until, print_fn, **where)


def _finish_paused(search_dir: str, configs, dirs, pruned: Sequence[int], rung: int, print_fn, *, inputs) -> None:
    """Finishes the ``pruned`` points where they paused (``results.json`` and plots; nothing trains),
    as many at once as ``_programs`` batches."""
    status = _status(pruned, configs, dirs)
    todo = [k for k in pruned if not status[k].finished]
    if todo:
        print_fn(f"halving: finishing {len(todo)} pruned points at epoch {rung}: "
                 + ", ".join(os.path.basename(dirs[k]) for k in todo))
    for batch in _programs(todo, configs, status, inputs):
        finish_paused([configs[k] for k in batch], [dirs[k] for k in batch], lambda _: None, group_dir=search_dir,
                      model=inputs[batch[0]].net, dataset=inputs[batch[0]].source)


def _mark(run_dir: str, meta: dict, rank: int, pruned_at: int | None, value: float) -> None:
    """Adds the search's record to a finished point's ``results.json`` (again on a resumed search: the same)."""
    if not hosts.primary():
        return
    path = os.path.join(run_dir, "results.json")
    with open(path) as f:
        results = json.load(f)
    # Its wall time: the seconds of its epochs (a point paused and resumed has no one wall-clock span).
    results.update(epochs_trained=pruned_at or meta["epochs"], wall_time_s=results["train_time_s"], halving={
        "eta": meta["eta"], "rungs": meta["rungs"], "rank": rank, "of": len(meta["points"]),
        "pruned_at_epoch": pruned_at, "metric": meta["metric"], "value": value})
    runs.write_json(path, results)


def _read(search_dir: str) -> dict:
    with open(os.path.join(search_dir, SEARCH_FILE)) as f:
        return json.load(f)


def _write(search_dir: str, meta: dict) -> None:
    if hosts.primary():
        runs.write_json(os.path.join(search_dir, SEARCH_FILE), meta)
