"""A TFDS image-classification dataset by its name, here KMNIST (Kuzushiji-MNIST, Clanuwat et al.
2018: 70,000 28x28 cursive Japanese characters in 10 classes), with examples/nnx_mnist.py's model.

    tfds build kmnist --file_format=array_record     # once, where TFDS can download (needs TensorFlow)
    python examples/tfds_name.py                      # or: tinyjax-train --dataset kmnist --model ...

tinyjax reads the prepared array_record files with ``tfds.data_source`` (no TensorFlow), and the
class names and the image and label keys from the builder. Not measured: the machine this was
written on cannot reach TFDS's download servers to prepare KMNIST. tests/test_examples.py runs this
file on ``tfds.testing.mock_data`` (random images: it checks the shapes, class names and a
finished run, not accuracy).
"""

import os
import sys

from tinyjax.config import Config, DataConfig, OptimConfig, ScheduleConfig
from tinyjax.train import train_and_evaluate

NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nnx_mnist.py") + ":Net"


def main(name: str = "kmnist", epochs: int = 5, out: str = "runs") -> str:
    config = Config(experiment="tfds", epochs=epochs, batch_size=128, out=out, data=DataConfig(name=name),
                    optim=OptimConfig(name="adam"), schedule=ScheduleConfig(max_lr=0.01))
    return train_and_evaluate(config, model=NET)[2]


if __name__ == "__main__":
    main(*sys.argv[1:2])
