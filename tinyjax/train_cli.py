"""``tinyjax-train``: one run of your own model on your own data, with every flag the experiments
take and no preset recipe behind them (the defaults of ``tinyjax.config.Config``: SGD, one-cycle to
--max-lr 0.05, 20 epochs of batch 128).

    tinyjax-train --model path/to/net.py:Net --dataset data.npz --epochs 10 --optimizer adam --max-lr 0.01
    tinyjax-train --model my_package.models:tiny_cnn --dataset path/to/class_folders --image-size 32,32 --seeds 5
    tinyjax-train --resume runs/train-default-<timestamp>

--model takes a preset name or an import reference to a flax linen or nnx module (a module, a class
with no required arguments, or a function returning one); --dataset a built-in name, a .npz file
(x_train, y_train [, x_test, y_test, class_names]) or a folder of class folders. The contract a
model meets, and the same from Python: docs/your-model-and-data.md.
"""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """``tinyjax-train``'s command line; returns the exit status (as ``tinyjax.cli.main``)."""
    from tinyjax.cli import main as cli_main
    from tinyjax.config import Config

    return cli_main({"default": Config(experiment="train")}, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
