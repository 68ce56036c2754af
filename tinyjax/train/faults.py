"""What stops a run early: SIGINT / SIGTERM, and a non-finite step.

Both end ``train_and_evaluate`` with an exception that says what happened and
what was saved; the CLI turns it into one line, the resume command, and an
exit status (130 for SIGINT and 143 for SIGTERM, the shell's 128 + signal
number; 1 for a non-finite step).
"""

from __future__ import annotations

import signal
import sys
import threading

from tinyjax.distributed import hosts


class Interrupted(Exception):
    """The run stopped on SIGINT or SIGTERM after saving what it had.

    Attributes:
      exit_status: 130 (SIGINT) or 143 (SIGTERM).
      resume: the command that continues the run, or None when nothing was saved.
    """

    def __init__(self, message: str, signum: int, resume: str | None):
        super().__init__(message)
        self.exit_status = 128 + signum
        self.resume = resume


class NonFiniteError(RuntimeError):
    """A step had a non-finite loss, gradient or parameter with ``--on-nan stop``;
    the message names the epoch, the step and the last good checkpoint."""


class Interrupts:
    """A context in which SIGINT and SIGTERM ask the training loop to stop.

    The first signal sets ``signal`` (the loop finishes its current step, saves
    and raises ``Interrupted``); a second SIGINT raises ``KeyboardInterrupt`` at
    once. Handlers are installed only in the main thread (Python delivers
    signals there) and the previous ones are restored on exit.
    """

    def __init__(self):
        self.signal: int | None = None
        self.remote: int | None = None  # A signal to another process of the run (agreed()).
        self.previous: dict = {}

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def agreed(self) -> bool:
        """Whether a stop was asked of any process of the run (``tinyjax.distributed.hosts``; a collective
        with several, called by all at the same step; with one, whether a signal arrived). The
        signal another process received is then ``stop_signal`` here (a first Ctrl-C
        to this process still saves)."""
        signum = hosts.largest(self.signal or 0)
        if signum:
            self.remote = self.remote or signum
        return signum > 0  # What every process was told, even if a signal arrived since.

    @property
    def stop_signal(self) -> int | None:
        """The signal that stops the run: this process's, or one another process received."""
        return self.signal or self.remote

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            if signum == signal.SIGINT:
                self.__exit__()
                raise KeyboardInterrupt
            return
        self.signal = signum
        print(f"\n{signal.Signals(signum).name}: finishing the current step, then saving and stopping "
              "(Ctrl-C again aborts at once, without saving).", file=sys.stderr, flush=True)


def nonfinite_error(run, epoch: int, steps, nonfinite: list[int]) -> NonFiniteError:
    """The error of a non-finite step with ``--on-nan stop``: where, and the last good checkpoint."""
    for c in run.checkpoints or []:
        c.wait()
    last = run.checkpoints and run.checkpoints[0].latest()
    position = int(min(steps[k] for k, x in enumerate(nonfinite) if x)) - epoch * run.steps_per_epoch + 1
    which = "".join(f" of {run.labels[k][:-2]}" for k, x in enumerate(nonfinite) if x and run.labels[k])
    return NonFiniteError(
        f"non-finite loss or gradient{which} at epoch {epoch + 1}, step {position}/{run.steps_per_epoch}; "
        "nothing after the last good checkpoint was saved ("
        + (f"{run.checkpoints[0].directory}/{last}" if last is not None else "none yet")
        + "). Lower the learning rate, or pass --on-nan skip to skip such steps.")
