"""airbench94 in plain PyTorch, for the benchmarks only: the recipe that tinyjax's ``fastnet_2m`` follows.

Source: Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (arXiv:2404.00498), and the file
``legacy/airbench94.py`` of github.com/KellerJordan/cifar10-airbench (94.01% mean over 1000 runs). That file
was read and this one written anew; the recipe is the file's, step for step:

- net: 2x2 whitening conv (24 filters: the 12 eigenvectors of the train images' patch covariance, scaled by
  1/sqrt(eigenvalue + 5e-4), and their negatives; frozen, its bias trained for 3 epochs), GELU, three groups
  of conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU (64/256/256 channels,
  BatchNorm scale frozen at 1), max-pool 3, linear head without bias, logits times 1/9. Convs: PyTorch's
  default init, then identity (dirac) on the first ``in_channels`` filters.
- optimiser: SGD, Nesterov, summed label-smoothed loss, lr and weight decay in airbench's decoupled form,
  BatchNorm biases at 64x the lr; the lr factor linear 0.2 -> 1 over 23% of the steps, then -> 0.07;
  Lookahead every 5 steps towards an EMA of all float state (BatchNorm statistics too), its weight
  0.95^5 * (step / steps)^3, and the EMA copied into the net at the end; ceil(9.9 * 48) = 476 steps.
- data: flip every image at random once, then flip all every odd epoch; per epoch a random translate of up
  to 2 pixels with reflect padding; drop the last partial batch. Test-time: mirror and 1-pixel translates.

Deliberate differences from airbench94:
- float32 on any torch device (CPU by default), not fp16 + channels_last on CUDA; normalisation in
  float32 from the uint8 pixels (airbench rounds the 0-1 pixels to fp16 first).
- data from ``uint8 [N, 32, 32, 3]`` numpy arrays (tinyjax's loader), not torchvision's CIFAR10.
- seeded: the init from ``torch.manual_seed(seed)``, the data order and augmentation from a
  ``torch.Generator`` of the seed (airbench: the unseeded global CUDA stream). The pre-flip mask is
  drawn before training, not at the first batch (same distribution).
- one run per call, not 25 after a warm-up run; no timing events; ``seconds`` covers an epoch's training
  and its plain evaluation.
- ``train_acc`` / ``train_loss`` are means over the epoch's batches (airbench logs the last batch).
- the whitening kernel comes from 5000 train images drawn with the seed (airbench: the first 5000 of the
  official, already shuffled order; tinyjax's CIFAR-10 copy is sorted by class).
- checkpoint and resume after every epoch; ``--train-limit`` / ``--test-limit`` take a fixed random
  subset (the same for every seed).
- Lookahead's EMA starts from the net after the whitening init (airbench copies it before, so its first
  update mixes a 0.95^5 (5/476)^3 ~ 1e-6 share of the random 2x2 kernel back in; runs of a few steps
  would get much more of it).
- BatchNorm biases are grouped by module type, not by the name containing "norm" (same groups).

tinyjax's CIFAR-10 copy is a JPEG (quality 75) re-encoding: expect 0.5-1.5 points below airbench's 94%.
As in airbench, a run of fewer than 5 steps ends at its initial weights (Lookahead never updated).

Command: ``python scripts/airbench_reference.py --seed 0 --out DIR`` (CIFAR-10 from ``tinyjax.data.load``; 26 min on a 2-core CPU).
(add ``--device cuda`` on a GPU; ``--train-limit N --test-limit N --epochs E`` for a quick check;
``--set bias_scaler=1`` and the like change one ``HYP`` entry, for an ablation; ``OUT/hyp.json`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HYP = {
    "epochs": 9.9,             # passes over the train split; steps = ceil(epochs * batches per epoch)
    "batch_size": 1024,        # images per step; an epoch's last partial batch is dropped
    "lr": 11.5,                # step size per 1024 images, decoupled from the momentum (see optimiser())
    "momentum": 0.85,          # Nesterov momentum
    "weight_decay": 0.0153,    # decay per 1024 images, decoupled from the lr
    "bias_scaler": 64.0,       # lr multiplier of the BatchNorm biases (weight decay unchanged)
    "label_smoothing": 0.2,    # probability mass spread uniformly over the 10 classes
    "warmup": 0.23,            # fraction of the steps over which the lr factor rises from lr_start to 1
    "lr_start": 0.2,           # lr factor at step 0
    "lr_end": 0.07,            # lr factor at the last step
    "lookahead_every": 5,      # steps between Lookahead updates
    "lookahead_decay": 0.95 ** 5,  # EMA weight of the old state at the end; times (step / steps)^3
    "whiten_bias_epochs": 3,   # epochs the whitening conv's bias trains before it freezes
    "whiten_images": 5000,     # train images whose 2x2 patches set the whitening kernel
    "whiten_eps": 5e-4,        # added to the patch covariance's eigenvalues (normalised pixels^2)
    "translate": 2,            # pixels of reflect padding for the random translate
    "widths": (64, 256, 256),  # channels of the three conv groups
    "bn_momentum": 0.6,        # weight of the old running statistics (PyTorch momentum = 1 - 0.6)
    "bn_eps": 1e-12,           # BatchNorm epsilon
    "logit_scale": 1 / 9,      # multiplies the logits
    "tta_level": 2,            # test-time augmentation: 0 none, 1 mirror, 2 mirror + translate
}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # of the 0-1 pixels


def conv(cin: int, cout: int, kernel: int = 3, bias: bool = False) -> nn.Conv2d:
    """A conv with airbench's init: PyTorch's default, bias 0, identity on the first ``cin`` filters."""
    layer = nn.Conv2d(cin, cout, kernel, padding="same" if kernel == 3 else 0, bias=bias)
    with torch.no_grad():
        nn.init.dirac_(layer.weight[:cin])
        if bias:
            layer.bias.zero_()
    return layer


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with its scale frozen at 1 (only the bias trains)."""
    bn = nn.BatchNorm2d(channels, eps=HYP["bn_eps"], momentum=1 - HYP["bn_momentum"])
    bn.weight.requires_grad_(False)
    return bn


class Net(nn.Module):
    """``float32 [B, 3, 32, 32]`` normalised images -> logits ``[B, 10]``; spatial 32 -> 31 (whitening)
    -> 15 -> 7 -> 3 (the groups' pools) -> 1 (max-pool 3)."""

    def __init__(self, widths=HYP["widths"]):
        super().__init__()
        self.whiten = conv(3, 24, kernel=2, bias=True)
        self.whiten.weight.requires_grad_(False)
        layers, cin = [], 24
        for w in widths:
            layers += [conv(cin, w), nn.MaxPool2d(2), batch_norm(w), nn.GELU(),
                       conv(w, w), batch_norm(w), nn.GELU()]
            cin = w
        self.body = nn.Sequential(*layers, nn.MaxPool2d(3), nn.Flatten())
        self.head = nn.Linear(cin, 10, bias=False)

    def forward(self, x):
        return self.head(self.body(F.gelu(self.whiten(x)))) * HYP["logit_scale"]


@torch.no_grad()
def init_whitening(layer: nn.Conv2d, x: torch.Tensor) -> None:
    """Sets the frozen kernel from the uncentred covariance of ``x``'s (``[N, 3, H, W]``) k x k patches:
    eigenvectors by decreasing eigenvalue, divided by sqrt(eigenvalue + eps), then their negatives."""
    k = layer.kernel_size[0]
    patches = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)
    values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))  # Ascending eigenvalues.
    filters = (vectors.T / (values[:, None] + HYP["whiten_eps"]).sqrt()).flip(0).view(-1, 3, k, k)
    layer.weight.copy_(torch.cat([filters, -filters]))


def normalise(images: np.ndarray, device) -> torch.Tensor:
    """``uint8 [N, H, W, C]`` -> standardised ``float32 [N, C, H, W]``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)) / torch.tensor(
        CIFAR_STD, device=device).view(1, 3, 1, 1)


class Augmenter:
    """airbench's train augmentation: each image flipped at random once (at construction), all images
    flipped together in odd epochs, and a fresh random translate per epoch from the reflect-padded images."""

    def __init__(self, x: torch.Tensor, generator: torch.Generator):
        self.generator, self.pad = generator, HYP["translate"]
        flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device).view(-1, 1, 1, 1)
        self.padded = F.pad(torch.where(flip, x.flip(-1), x), (self.pad,) * 4, mode="reflect")

    def epoch(self, epoch: int) -> torch.Tensor:
        """The epoch's images, ``[N, 3, 32, 32]``: one masked copy per (dy, dx) offset."""
        n, size = len(self.padded), self.padded.shape[-1] - 2 * self.pad
        shifts = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=self.generator).to(self.padded.device)
        out = torch.empty_like(self.padded[:, :, :size, :size])
        for dy in range(2 * self.pad + 1):
            for dx in range(2 * self.pad + 1):
                rows = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                out[rows] = self.padded[rows, :, dy:dy + size, dx:dx + size]
        return out.flip(-1) if epoch % 2 == 1 else out


def optimiser(net: Net, total_steps: int):
    """``(SGD, LambdaLR)``: airbench's decoupled lr / weight decay turned into PyTorch's. Nesterov SGD
    with momentum m takes steps 1 + 1/(1 - m) times the gradient, so lr is divided by 1024 times that;
    PyTorch multiplies the decay by the group's lr, so each group's decay is wd / its lr."""
    scale = 1024 * (1 + 1 / (1 - HYP["momentum"]))
    lr, wd = HYP["lr"] / scale, HYP["weight_decay"] * HYP["batch_size"] / scale
    bn_biases = [m.bias for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    others = [p for p in net.parameters() if p.requires_grad and all(p is not b for b in bn_biases)]
    bias_lr = lr * HYP["bias_scaler"]
    opt = torch.optim.SGD([dict(params=bn_biases, lr=bias_lr, weight_decay=wd / bias_lr),
                           dict(params=others, lr=lr, weight_decay=wd / lr)],
                          momentum=HYP["momentum"], nesterov=True)
    warmup = int(total_steps * HYP["warmup"])

    def factor(step: int) -> float:  # Piecewise linear: lr_start -> 1 -> lr_end.
        if step < warmup:
            return HYP["lr_start"] + (1 - HYP["lr_start"]) * step / warmup
        return 1 + (HYP["lr_end"] - 1) * (step - warmup) / (total_steps - warmup)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def lookahead(net: nn.Module, ema: dict, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * net`` over every float entry of the state dict, then net = ema."""
    for name, value in net.state_dict().items():
        if value.is_floating_point():
            ema[name].lerp_(value, 1 - decay)
            value.copy_(ema[name])


@torch.inference_mode()
def predict(net: Net, x: torch.Tensor, tta_level: int = 0, batch: int = 2000) -> torch.Tensor:
    """Logits ``[N, 10]`` in eval mode. Level 1 averages the image and its mirror; level 2 weights that
    pair 1/2 and the pairs of the 1-pixel (reflect-padded) up-left and down-right translates 1/4 each."""
    net.eval()

    def mirror(v):
        return 0.5 * net(v) + 0.5 * net(v.flip(-1)) if tta_level else net(v)

    out = []
    for v in x.split(batch):
        logits = mirror(v)
        if tta_level >= 2:
            padded, size = F.pad(v, (1,) * 4, mode="reflect"), v.shape[-1]
            shifted = [mirror(padded[:, :, o:o + size, o:o + size]) for o in (0, 2)]
            logits = 0.5 * logits + 0.25 * (shifted[0] + shifted[1])
        out.append(logits)
    return torch.cat(out)


def accuracy(net: Net, x: torch.Tensor, y: torch.Tensor, tta_level: int = 0) -> float:
    return 100.0 * float((predict(net, x, tta_level).argmax(1) == y).float().mean())


def train(train_images, train_labels, test_images, test_labels, seed: int, epochs: float | None = None,
          device: str = "cpu", on_epoch=None, checkpoint: str | None = None) -> list[dict]:
    """One airbench94 run. Returns per epoch ``{"epoch", "train_acc", "train_loss", "test_acc",
    "seconds"}`` (accuracies in %, the loss per image, test without TTA), the last record also with
    ``"tta_test_acc"``. ``on_epoch(history)`` is called after each epoch; with ``checkpoint`` (a file)
    the state is saved there after each epoch and a run found there is continued."""
    epochs = HYP["epochs"] if epochs is None else epochs
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x, y = normalise(train_images, device), torch.as_tensor(np.asarray(train_labels), dtype=torch.long).to(device)
    x_test = normalise(test_images, device)
    y_test = torch.as_tensor(np.asarray(test_labels), dtype=torch.long).to(device)
    steps_per_epoch = len(x) // HYP["batch_size"]
    if steps_per_epoch == 0:
        raise ValueError(f"need at least batch_size={HYP['batch_size']} train images, got {len(x)}.")
    total_steps = math.ceil(steps_per_epoch * epochs)
    net = Net().to(device)
    init_whitening(net.whiten, x[torch.randperm(len(x), generator=generator)[:HYP["whiten_images"]].to(device)])
    ema = {k: v.clone() for k, v in net.state_dict().items()}  # Lookahead's EMA starts at the initial net.
    opt, schedule = optimiser(net, total_steps)
    augment = Augmenter(x, generator)
    history, step, first_epoch = [], 0, 0
    if checkpoint and os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        ema = state["lookahead"]
        history, step, first_epoch = state["history"], state["step"], state["epoch"]
    for epoch in range(first_epoch, math.ceil(epochs)):
        start = time.perf_counter()
        net.whiten.bias.requires_grad_(epoch < HYP["whiten_bias_epochs"])
        images, order = augment.epoch(epoch), torch.randperm(len(x), generator=generator).to(device)
        net.train()
        correct, loss_sum, seen = 0, 0.0, 0
        for i in range(steps_per_epoch):
            index = order[i * HYP["batch_size"]:(i + 1) * HYP["batch_size"]]
            logits = net(images[index])
            loss = F.cross_entropy(logits, y[index], label_smoothing=HYP["label_smoothing"], reduction="sum")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            step += 1
            correct, loss_sum = correct + (logits.argmax(1) == y[index]).sum(), loss_sum + loss.detach()
            seen += len(index)
            if step % HYP["lookahead_every"] == 0:
                lookahead(net, ema, HYP["lookahead_decay"] * (step / total_steps) ** 3)
            if step >= total_steps:
                lookahead(net, ema, 1.0)  # The net becomes the EMA.
                break
        history.append({"epoch": epoch + 1, "train_acc": 100.0 * float(correct) / seen,
                        "train_loss": float(loss_sum) / seen, "test_acc": accuracy(net, x_test, y_test),
                        "seconds": time.perf_counter() - start})
        if checkpoint:
            state = {"model": net.state_dict(), "opt": opt.state_dict(), "schedule": schedule.state_dict(),
                     "generator": generator.get_state(), "lookahead": ema, "history": history, "step": step,
                     "epoch": epoch + 1, "torch_rng": torch.get_rng_state()}
            torch.save(state, checkpoint + ".tmp")
            os.replace(checkpoint + ".tmp", checkpoint)
        if on_epoch is not None:
            on_epoch(history)
    if history and "tta_test_acc" not in history[-1]:
        history[-1]["tta_test_acc"] = accuracy(net, x_test, y_test, HYP["tta_level"])
        if on_epoch is not None:
            on_epoch(history)
    return history


def params(net: nn.Module) -> dict:
    """Parameter counts: all, trained, and as tinyjax counts ``fastnet_2m`` (frozen whitening kernel
    included, BatchNorm scales excluded)."""
    total = sum(p.numel() for p in net.parameters())
    scales = sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    return {"all": total, "trained": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "tinyjax": total - scales}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder for history.json and checkpoint.pt")
    parser.add_argument("--epochs", type=float, default=None, help=f"default {HYP['epochs']}")
    parser.add_argument("--train-limit", type=int, default=None, help="a fixed random N train images only")
    parser.add_argument("--test-limit", type=int, default=None, help="a fixed random N test images only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one HYP entry, for a one-change ablation (e.g. bias_scaler=1); repeatable")
    args = parser.parse_args()
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in HYP or not value or isinstance(HYP[key], tuple):
            parser.error(f"--set {item}: expected KEY=VALUE with KEY one of "
                         f"{', '.join(k for k, v in HYP.items() if not isinstance(v, tuple))}")
        HYP[key] = type(HYP[key])(float(value))
    hyp_path = os.path.join(args.out, "hyp.json")
    if os.path.exists(hyp_path) and json.load(open(hyp_path)) != json.loads(json.dumps(HYP)):
        parser.error(f"{args.out} holds a run of other hyperparameters ({hyp_path}); use another --out")
    from tinyjax import data
    data_dir = os.environ.get("TINYJAX_DATA_DIR")
    (x, y), (x_test, y_test) = (data.load("cifar10", s, data_dir) for s in ("train", "test"))
    keep, keep_test = (np.random.RandomState(0).permutation(len(a))[:n] for a, n in
                       ((y, args.train_limit), (y_test, args.test_limit)))  # The files are sorted by class.
    x, y, x_test, y_test = x[keep], y[keep], x_test[keep_test], y_test[keep_test]
    os.makedirs(args.out, exist_ok=True)
    with open(hyp_path, "w") as f:
        json.dump(HYP, f, indent=1)
    print(f"airbench94 reference: {len(x)} train / {len(x_test)} test images, params {params(Net())}", flush=True)

    def write(history):
        with open(os.path.join(args.out, "history.json.tmp"), "w") as f:
            json.dump(history, f, indent=1)
        os.replace(os.path.join(args.out, "history.json.tmp"), os.path.join(args.out, "history.json"))
        print(json.dumps(history[-1]), flush=True)

    train(x, y, x_test, y_test, args.seed, args.epochs, args.device, write, os.path.join(args.out, "checkpoint.pt"))


if __name__ == "__main__":
    main()
