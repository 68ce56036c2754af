"""What a run leaves, and what reads it back: the run directory (``directory``, whose API is
re-exported here with ``hardware``'s: ``runs.create``, ``runs.write_results``, ...), checkpoints (``checkpoint``,
orbax), the evaluation forward pass and inference (``inference``), plots (``plots``) and the
comparison table of run directories (``report``). Nothing here imports ``tinyjax.train``."""

from tinyjax.runs.directory import (EventWriter, append_metrics, best_epoch, check_writable, create, read_metrics,
                                    resume_command, write_json, write_plots, write_results, write_text)
from tinyjax.runs.hardware import cpu_model, describe, environment

__all__ = ["EventWriter", "append_metrics", "best_epoch", "check_writable", "cpu_model", "create", "describe",
           "environment", "read_metrics", "resume_command", "write_json", "write_plots", "write_results",
           "write_text"]
