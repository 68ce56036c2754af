"""A TFDS image-classification dataset by its name, here Fashion-MNIST as TFDS builds it
(``fashion_mnist:3.0.1``: the version names TFDS's build, the bare ``fashion_mnist`` being tinyjax's
built-in reader), with examples/nnx_mnist.py's model. Any prepared name works alike: ``kmnist``,
``emnist/balanced``, ``cifar100``, ``svhn_cropped``.

    tfds build fashion_mnist --file_format=array_record    # once (TensorFlow, network; offline: see below)
    python examples/tfds_name.py                            # or: tinyjax-train --dataset fashion_mnist:3.0.1 ...

tinyjax reads the array_record files with ``tfds.data_source`` (no TensorFlow), the class names and
the image and label keys from the builder. Measured (2026-12-04, 2-core Intel Xeon CPU with AVX-512,
jax 0.10.2; built offline from Debian's ``dataset-fashion-mnist`` files by
``scripts/tfds_from_local.py``): 91.60% test accuracy after 5 epochs (n = 1, seed 0; 20,538
parameters; 175 s, beside the test suite).
tests/test_examples.py runs this file on ``tfds.testing.mock_data`` (random images: shapes, class
names and a finished run, not accuracy).
"""

import os
import sys

from tinyjax.config import Config, DataConfig, OptimConfig, ScheduleConfig
from tinyjax.train import train_and_evaluate

NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nnx_mnist.py") + ":Net"


def main(name: str = "fashion_mnist:3.0.1", epochs: int = 5, out: str = "runs") -> str:
    config = Config(experiment="tfds", epochs=epochs, batch_size=128, out=out, data=DataConfig(name=name),
                    optim=OptimConfig(name="adam"), schedule=ScheduleConfig(max_lr=0.01))
    return train_and_evaluate(config, model=NET)[2]


if __name__ == "__main__":
    main(*sys.argv[1:2])  # TFDS finds prepared data in $TFDS_DATA_DIR (default ~/tensorflow_datasets).
