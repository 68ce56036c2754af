"""Your own model in a file and your own numpy arrays: 5 seeds, one-cycle, checkpoints, an export.

The data are scikit-learn's 1,797 real 8x8 handwritten digits (``load_digits``, bundled, no
download): the first 1,500 train, the last 297 test. The model is ``digits_net.py``'s linen CNN.

    python examples/own_arrays.py          # 5 seeds x 30 epochs into runs/; or: EPOCHS SEEDS OUT

Measured (2026-12-04, 2-core Intel Xeon CPU with AVX-512, jax 0.10.2, beside another job): test
accuracy on the 297 held-out digits after 30 epochs 96.57 ± 0.84% [95.52, 97.61] (mean ± sample std
[95% CI], n = 5, seeds 0-4: 95.96, 96.63, 96.30, 95.96, 97.98), 56 s for all five seeds.
"""

import os
import sys

from sklearn.datasets import load_digits

from tinyjax.config import Config, OptimConfig, ScheduleConfig
from tinyjax.data import from_arrays
from tinyjax.export import export_run
from tinyjax.train.seeds import train_seeds

NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits_net.py") + ":DigitsCNN"


def main(epochs: int = 30, seeds: int = 5, out: str = "runs") -> str:
    digits = load_digits()
    x, y = digits.images / 16.0, digits.target  # Float pixels in [0, 1], labels 0-9.
    data = from_arrays(x[:1500], y[:1500], x[1500:], y[1500:])
    config = Config(experiment="digits", epochs=epochs, batch_size=64, seeds=tuple(range(seeds)), out=out,
                    optim=OptimConfig(name="adam"), schedule=ScheduleConfig(max_lr=0.01))
    histories, run_dir = train_seeds(config, model=NET, data=data)
    export_run(os.path.join(run_dir, "seed-0"))  # A jax.export artifact: loads with jax alone.
    return run_dir


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]), *sys.argv[3:4])
