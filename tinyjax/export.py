"""Export a run's model as a portable ``jax.export`` artifact:
``tinyjax-export RUN_DIR [--which best|latest] [--batch N|dynamic] [--out DIR]``.

Writes two files (default ``RUN_DIR/export/``):

- ``model.jax_exported``: the serialized ``jax.export.Exported`` of the run's
  inference function, ``uint8 [B, H, W, C]`` raw pixels -> ``float32 [B, K]``
  logits, with the weights inside as constants: the dataset's normalisation,
  BatchNorm on its running statistics, the weights' moving average where the
  run kept one (``--ema``), and the run's test-time augmentation views
  (``--tta``), i.e. exactly what the run's evaluation and ``tinyjax.predict``
  compute (softmax of these logits = ``predict``'s probabilities). ``B`` is a
  symbolic dimension (``--batch dynamic``, the default: any batch) or fixed.
  Lowered for CPU, CUDA and TPU (``--platforms``), so one file serves all three.
- ``model.json``: the input spec (shape with ``null`` for a dynamic batch, dtype
  ``uint8``, layout NHWC, pixel range), the output, the class names, and where
  it came from (run, checkpoint, epoch, model, parameters, jax version).

Loading needs jax (and ``flatbuffers``, which its deserialization imports), not
tinyjax: the exporting jax version or a newer one inside jax's backward
compatibility window (jax.export's "compatibility guarantees": 6 months;
``model.json`` records the version)::

    import json, jax, numpy as np
    spec = json.load(open("export/model.json"))
    with open("export/model.jax_exported", "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    logits = exported.call(images)          # images: uint8 [B, 28, 28, 1]
    labels = [spec["class_names"][i] for i in np.asarray(logits).argmax(-1)]

Exit status 2 with one ``error:`` line for a folder that is not a run, holds no
such checkpoint, or one that cannot be read, or an output folder that cannot
be written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

ARTIFACT, SPEC = "model.jax_exported", "model.json"
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # What jax.export.export lowers for (jax 0.10).


def export_run(run_dir: str, which: str = "best", batch: int | None = None, out: str | None = None,
               platforms: Sequence[str] = ("cpu", "cuda", "tpu"), model=None) -> dict:
    """Exports the run's ``which`` checkpoint (see the module docstring) into ``out`` (default
    ``RUN_DIR/export``) and returns the spec written as ``model.json``.

    Args:
      batch: a fixed batch size, or None for a symbolic one (``jax.export.symbolic_shape("B")``).
      platforms: ``jax.export`` lowering platforms; the artifact runs on each.
      model: the run's model when it was a Python object that cannot be imported again
        (``tinyjax.load``'s ``model``).

    Raises:
      ConfigError: a batch < 1 or an unknown platform (before anything is read), not a run
        directory, no such checkpoint, or ``out`` cannot be written.
      CheckpointError: the checkpoint cannot be read.
    """
    import jax
    import jax.numpy as jnp

    from tinyjax import models
    from tinyjax.config import ConfigError
    from tinyjax.runs import loading
    from tinyjax.runs.inference import view_logits

    if batch is not None and batch < 1:
        raise ConfigError(f"--batch must be >= 1 or 'dynamic', got {batch}.")
    unknown = sorted(set(platforms) - set(PLATFORMS)) or ([] if platforms else ["(none)"])
    if unknown:
        raise ConfigError(f"--platforms {','.join(platforms)}: {', '.join(unknown)} is not a jax.export platform; "
                          f"choose among {','.join(PLATFORMS)}.")
    run = loading.load(run_dir, which, model)
    model, variables, config, epoch = run
    out = out or os.path.join(run_dir, "export")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write the export to {out} ({e.strerror}); give --out a writable folder.") from e
    mean, std = run.info.mean, run.info.std
    variables = jax.tree.map(jnp.asarray, variables)

    def logits(images):
        """uint8 [B, H, W, C] -> float32 [B, K]: the run's evaluation (``view_logits``)."""
        pixels = images.astype(jnp.float32) / 255.0
        return view_logits(model.apply, variables, pixels, mean, std, config.tta).astype(jnp.float32)

    shape = run.info.image_shape
    lead = jax.export.symbolic_shape("B") if batch is None else (batch,)
    exported = jax.export.export(jax.jit(logits), platforms=tuple(platforms))(
        jax.ShapeDtypeStruct(tuple(lead) + tuple(shape), jnp.uint8))
    with open(os.path.join(out, ARTIFACT), "wb") as f:
        f.write(exported.serialize())
    names = list(run.info.class_names)
    spec = {"format": "jax.export (jax.export.deserialize, then .call(images))", "file": ARTIFACT,
            "input": {"shape": [batch, *shape], "dtype": "uint8", "layout": "NHWC (batch, height, width, channels)",
                      "range": "raw pixels 0..255; normalisation is inside the model"},
            "output": {"shape": [batch, len(names)], "dtype": "float32",
                       "meaning": "logits (softmax for class probabilities), averaged over the test-time views"},
            "class_names": names, "normalization": {"mean": mean, "std": std}, "tta": config.tta,
            "platforms": list(exported.platforms), "calling_convention_version": exported.calling_convention_version,
            "jax_version": jax.__version__, "source": {
                "run_dir": os.path.abspath(run_dir), "which": which, "epoch": epoch, "model": config.model,
                "params": models.count_params(variables["params"]),
                "ema": bool(config.ema), "dataset": config.data.name}}
    with open(os.path.join(out, SPEC), "w") as f:
        json.dump(spec, f, indent=2)
    return spec


def main(argv: Sequence[str] | None = None) -> int:
    """``tinyjax-export``'s command line (the module docstring); returns the exit status: 0, or 2 with
    one ``error:`` line."""
    parser = argparse.ArgumentParser(prog="tinyjax-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a run directory, e.g. runs/mnist_onecycle-default-<timestamp>")
    parser.add_argument("--which", choices=("best", "latest"), default="best",
                        help="the best checkpoint (by the run's --best-metric) or the latest one")
    parser.add_argument("--batch", default="dynamic",
                        help="the batch size the artifact takes: N, or dynamic (any; a symbolic dimension)")
    parser.add_argument("--out", default=None, help="folder for model.jax_exported and model.json "
                                                    "(default RUN_DIR/export)")
    parser.add_argument("--platforms", default="cpu,cuda,tpu", help="comma-separated jax.export platforms")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one error line")
    args = parser.parse_args(argv)
    if args.batch != "dynamic" and not args.batch.isdigit():
        parser.error(f"--batch must be a number or 'dynamic', got {args.batch!r}")

    from tinyjax.config import ConfigError
    from tinyjax.runs.checkpoint import CheckpointError

    try:
        spec = export_run(args.run_dir, args.which, None if args.batch == "dynamic" else int(args.batch), args.out,
                          args.platforms.split(","))
    except (ConfigError, CheckpointError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.run_dir, "export")
    print(f"{args.run_dir}: {args.which} checkpoint (epoch {spec['source']['epoch']}) exported to "
          f"{os.path.join(out, ARTIFACT)} (input uint8 {spec['input']['shape']}, output {spec['output']['shape']} "
          f"logits, platforms {','.join(spec['platforms'])}) and {os.path.join(out, SPEC)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
