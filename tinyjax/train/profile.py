"""``--profile START:STOP``: a ``jax.profiler`` trace of training steps START..STOP-1.

    trace = StepTrace.create(config, run_dir, total_steps, print_fn)   # None without --profile
    trace.at(step, next_step, carry)   # before the steps from ``step`` (counted over the run) run
    trace.close()                      # the run ended or stopped inside the range

Steps count optimizer updates over the whole run, from 0 (epoch e's step i is
``e * steps_per_epoch + i``), as the schedule does. The trace starts before the
first step in the range and stops after the last, each time after waiting for
the device (``jax.block_until_ready``), so that it holds those steps and no
others; with ``--loop scan`` an epoch is one call, so the trace holds the
whole epochs the range touches. Tracing only observes: the run's numbers are
the same with or without it (tested).

The trace is written by ``jax.profiler.start_trace`` (jax 0.10:
``log_dir/plugins/profile/<timestamp>/<host>.xplane.pb``, and with
``create_perfetto_trace=True`` a ``perfetto_trace.json.gz`` beside it), into
``RUN_DIR/profile``: open it with ``tensorboard --logdir RUN_DIR/profile``
(the ``tensorboard-plugin-profile`` package's Profile tab) or drop the
``.json.gz`` on https://ui.perfetto.dev.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax

from tinyjax.config import Config, ConfigError
from tinyjax.validation import parse_profile


def check(config: Config, total_steps: int) -> tuple[int, int]:
    """``config.profile``'s range, checked against the run's ``total_steps`` (epochs x steps per epoch).

    Raises:
      ConfigError: a malformed range, or one that ends after the run's last step.
    """
    start, stop = parse_profile(config.profile)
    if stop > total_steps:
        raise ConfigError(f"--profile {config.profile} ends after the run's {total_steps} training steps; "
                          f"give a STOP of at most {total_steps}.")
    return start, stop


class StepTrace:
    """The trace of one run's steps ``start .. stop - 1`` into ``directory`` (see the module docstring)."""

    def __init__(self, start: int, stop: int, directory: str, print_fn: Callable[[str], None]):
        self.start, self.stop, self.directory, self.print_fn = start, stop, directory, print_fn
        self.active = self.done = False
        self.first = start

    @classmethod
    def create(cls, config: Config, run_dir: str, total_steps: int,
               print_fn: Callable[[str], None]) -> "StepTrace | None":
        """The trace ``config.profile`` asks for, into ``run_dir/profile``; None without one.

        Raises:
          ConfigError: a malformed range, or one that ends after the run's ``total_steps``.
        """
        if not config.profile:
            return None
        return cls(*check(config, total_steps), os.path.join(run_dir, "profile"), print_fn)

    def at(self, step: int, next_step: int, carry: Any) -> None:
        """Called before the steps ``step .. next_step - 1`` run (``carry``: what the steps so far
        computed, waited for; ``next_step == step`` when none follows before the next call): starts
        the trace when they reach into the range, stops it once ``step`` is past it. A trace that
        cannot start or be written is a warning line; the run goes on."""
        if self.active and step >= self.stop:
            jax.block_until_ready(carry)
            self.close(step)
        elif not self.active and not self.done and step < self.stop and next_step > self.start:
            jax.block_until_ready(carry)
            self.done = True  # Tried once: a trace that cannot start is not tried again.
            try:
                jax.profiler.start_trace(self.directory, create_perfetto_trace=True)
            except Exception as e:  # E.g. another trace already runs: the run goes on untraced.
                self.print_fn(f"warning: --profile: no trace ({type(e).__name__}: {e}).")
                return
            self.active, self.done, self.first = True, False, step

    def skipped(self, step: int) -> None:
        """Says so when a run resumed at ``step`` is already past the range: nothing will be traced."""
        if step >= self.stop:
            self.done = True
            self.print_fn(f"profile: the run resumes at training step {step}, past --profile "
                          f"{self.start}:{self.stop}: nothing traced.")

    def close(self, step: int | None = None) -> None:
        """Stops the trace if it runs, after ``step`` steps (None: where the run ended or stopped), and
        says where it is."""
        if self.active:
            self.active, self.done = False, True
            try:
                jax.profiler.stop_trace()
            except Exception as e:  # E.g. a full disk: the run and its checkpoints matter more.
                self.print_fn(f"warning: --profile: the trace could not be written ({type(e).__name__}: {e}).")
                return
            steps = f"{self.first}:{step}" if step is not None else f"{self.first} to where the run stopped"
            self.print_fn(f"profile: training steps {steps} traced into {self.directory} (asked: "
                          f"{self.start}:{self.stop}); open it with tensorboard --logdir {self.directory}, "
                          "or its perfetto_trace.json.gz on https://ui.perfetto.dev")


def traced(trace: StepTrace, epoch: int, steps: int, loop: str) -> Callable:
    """``train_epoch``'s hook for ``--profile``: ``done`` steps of (0-based) ``epoch`` as the run's step
    count, and how far the steps before the next call go: the next step, the epoch's end under
    ``scan``, none after the epoch's last step (its evaluation and save come first)."""
    def hook(done: int, carry) -> None:
        trace.at(epoch * steps + done, epoch * steps + (steps if loop == "scan" or done == steps else done + 1),
                 carry)
    return hook
