"""PyTorch references of tinyjax's networks and recipes, for the benchmarks only.

PyTorch is no dependency of tinyjax or of its tests: ``pip install
torch==2.13.0`` (CPU) to run ``scripts/bench.py`` and ``scripts/parity.py``.
The loops are what a careful PyTorch user writes by hand, and the fastest
fair baseline: the whole split as one tensor on the device, a random
permutation per epoch, slices as batches (no DataLoader), ``zero_grad(
set_to_none=True)``, eval under ``torch.inference_mode``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

# Per-channel (mean, std) of the 0-1 pixels, as tinyjax.data.NORMALIZATION.
MNIST_NORM = (0.1307, 0.3081)


def cnn(channels, bias: bool, paddings, pools) -> nn.Sequential:
    """tinyjax's ``CNN`` preset: conv -> BatchNorm -> ReLU [-> 2x2 max-pool] per layer, global
    average pool, linear head."""
    layers, cin = [], 1
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(cin, c, 3, padding=paddings[i], bias=bias), nn.BatchNorm2d(c), nn.ReLU()]
        if i in pools:
            layers.append(nn.MaxPool2d(2, 2))
        cin = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


class BasicBlock(nn.Module):
    """He et al.'s CIFAR block; where the shape changes, the option-A shortcut (subsample, zero-pad
    channels after the old ones, as tinyjax) or option B (1x1 conv + BatchNorm)."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin
        self.projection = None
        if shortcut == "B" and (stride > 1 or cin != cout):
            self.projection = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.projection is not None:
            return torch.relu(y + self.projection(x))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return torch.relu(y + shortcut)


def resnet(blocks=(3, 3, 3), widths=(16, 32, 64), stem: int = 16, shortcut: str = "A",
           dropout: float = 0.0) -> nn.Sequential:
    """tinyjax's ``ResNet``: 3x3 stem + BatchNorm + ReLU, stages of BasicBlocks (stride 2 opening every
    stage but the first), global average pool, dropout, linear head. Defaults: ResNet-20 (He et al.
    2015, sec. 4.2)."""
    layers, cin = [], stem
    for s, (n, width) in enumerate(zip(blocks, widths)):
        for b in range(n):
            layers.append(BasicBlock(cin, width, 2 if s > 0 and b == 0 else 1, shortcut))
            cin = width
    return nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(), *layers,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, 10))


def kaiming_normal(model: nn.Module, mode: str) -> None:
    """``kaiming_normal_(weight, mode=mode, nonlinearity="relu")`` on every conv and linear weight, the
    biases left at PyTorch's default: ``mode="fan_in"`` is the common PyTorch CIFAR-ResNet code's
    ``_weights_init``, ``"fan_out"`` torchvision's ResNet."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")


def mlp(widths) -> nn.Sequential:
    layers, cin = [nn.Flatten()], 784
    for w in widths:
        layers += [nn.Linear(cin, w), nn.ReLU()]
        cin = w
    return nn.Sequential(*layers, nn.Linear(cin, 10))


MODELS = {  # tinyjax preset -> its PyTorch twin (parameter counts are checked by the benchmarks).
    "mnist_cnn_7k": lambda: cnn((7, 7, 10, 10, 12, 16, 18), False, (0, 0, 0, 0, 0, 1, 1), (2, 4)),
    "mnist_cnn_18k": lambda: cnn((14, 14, 16, 18, 20, 22, 22), True, (0, 0, 0, 0, 0, 1, 0), (2, 4)),
    "mlp_2hl_50": lambda: mlp((50, 50)),
    "mlp_3hl_1000": lambda: mlp((1000, 1000, 1000)),
    "resnet20": resnet,
    "resnet_7x3": lambda: resnet((7, 7, 7), (32, 64, 190), 32, "B", 0.3),
}


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def optimizer(model: nn.Module, config, total_steps: int):
    """``(optimizer, scheduler or None)`` of a tinyjax ``Config``'s optim and schedule (one-cycle,
    piecewise-constant or constant), stepped once per batch."""
    o, s = config.optim, config.schedule
    if o.name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                              weight_decay=o.weight_decay)
    else:
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        opt = cls(model.parameters(), lr=o.lr, betas=(o.momentum, o.beta2), eps=o.eps, weight_decay=o.weight_decay)
    if s.name == "onecycle":
        return opt, torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=s.max_lr, total_steps=total_steps, pct_start=s.pct_start, anneal_strategy=s.anneal_strategy,
            cycle_momentum=s.cycle_momentum, base_momentum=s.base_momentum, max_momentum=s.max_momentum,
            div_factor=s.div_factor, final_div_factor=s.final_div_factor, three_phase=s.three_phase)
    if s.name == "piecewise":
        steps_per_epoch = total_steps // config.epochs
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, [m * steps_per_epoch for m in s.milestones], s.gamma)
    return opt, None


def to_tensor(images: np.ndarray, mean, std) -> torch.Tensor:
    """``uint8 [N, H, W, C]`` -> standardized ``float32 [N, C, H, W]``."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def crop_flip(x: torch.Tensor, padding: int, flip: bool, fill: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
    """Random crop with ``padding`` pixels of ``fill`` (``[C]``: black after standardizing, as
    tinyjax pads raw pixels with 0) and, with ``flip``, a random horizontal flip, per example."""
    b, _, h, w = x.shape
    padded = nn.functional.pad(x - fill.view(1, -1, 1, 1), (padding,) * 4) + fill.view(1, -1, 1, 1)
    dy = torch.randint(0, 2 * padding + 1, (b, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b, 1, 1), generator=generator)
    rows = (torch.arange(h).view(1, h, 1) + dy).expand(b, h, w)
    cols = (torch.arange(w).view(1, 1, w) + dx).expand(b, h, w)
    if flip:
        cols = torch.where(torch.rand(b, 1, 1, generator=generator) < 0.5, 2 * dx + w - 1 - cols, cols)
    index = torch.arange(b).view(b, 1, 1)
    rows, cols, index = rows.to(x.device), cols.to(x.device), index.to(x.device)
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


class Trainer:
    """A model, its optimizer and schedule, and the train split as tensors: ``epoch()``
    trains one epoch (or ``steps`` steps) and returns its train (accuracy %, mean loss) on the
    augmented batches in train mode, ``evaluate(x, y)`` -> (accuracy %, mean loss).

    ``init``: None keeps PyTorch's default initialisation, ``"fan_in"`` / ``"fan_out"`` applies
    ``kaiming_normal``. ``fill``: what the crop's padding brings in, ``"black"`` (pixel 0, as
    torchvision's RandomCrop before ToTensor/Normalize) or ``"mean"`` (0 after standardising: the
    mean colour, as fb.resnet.torch's RandomCrop after ColorNormalize); None: the config's.
    ``state_dict()`` / ``load_state_dict()`` cover the model, optimizer, schedule, generator and the
    global RNG (dropout), so a run saved after an epoch continues as if never stopped (on the CPU).
    """

    def __init__(self, config, images: np.ndarray, labels: np.ndarray, mean, std, seed: int = 0,
                 device: str = "cpu", init: str | None = None, fill: str | None = None):
        a = config.augment
        if a.rotation or a.brightness or a.contrast or a.saturation or a.flip not in ("none", "random") \
                or config.schedule.name not in ("onecycle", "piecewise", "constant"):
            raise ValueError("the PyTorch reference has crop, random flip, and the onecycle, piecewise and "
                             "constant schedules only.")
        torch.manual_seed(seed)
        self.config, self.model, self.device = config, MODELS[config.model](), device
        if init is not None:
            kaiming_normal(self.model, init)
        self.model.to(device)
        fill = fill or getattr(a, "crop_fill", "black")
        self.fill = (-torch.tensor(mean) / torch.tensor(std) if fill == "black"  # Pixel 0 after standardizing.
                     else torch.zeros(len(np.atleast_1d(mean)))).to(device)
        self.x = to_tensor(images, mean, std).to(device)
        self.y = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.steps_per_epoch = -(-len(self.y) // config.batch_size)
        self.opt, self.schedule = optimizer(self.model, config, config.epochs * self.steps_per_epoch)
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self, steps: int | None = None) -> tuple[float, float]:
        self.model.train()
        order = torch.randperm(len(self.y), generator=self.generator).to(self.device)
        batch, padding = self.config.batch_size, self.config.augment.crop_padding
        correct, loss_sum, count = 0, 0.0, 0
        for i in range(steps or self.steps_per_epoch):
            index = order[(i * batch) % len(order):][:batch]
            x, y = self.x[index], self.y[index]
            if padding or self.config.augment.flip == "random":
                x = crop_flip(x, padding, self.config.augment.flip == "random", self.fill, self.generator)
            self.opt.zero_grad(set_to_none=True)
            logits = self.model(x)
            loss = self.loss(logits, y)
            loss.backward()
            self.opt.step()
            if self.schedule is not None:
                self.schedule.step()
            correct += (logits.argmax(1) == y).sum()
            loss_sum, count = loss_sum + loss.detach() * len(y), count + len(y)
        return 100.0 * float(correct) / count, float(loss_sum) / count

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "schedule": None if self.schedule is None else self.schedule.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state()}  # Dropout's draws.

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        if "torch_rng" in state:  # States saved before it was kept lack it.
            torch.set_rng_state(state["torch_rng"])

    @torch.inference_mode()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
        self.model.eval()
        correct, loss = 0, 0.0
        for i in range(0, len(y), batch):
            logits = self.model(x[i:i + batch])
            correct += int((logits.argmax(1) == y[i:i + batch]).sum())
            loss += float(self.loss(logits, y[i:i + batch])) * len(y[i:i + batch])
        return 100.0 * correct / len(y), loss / len(y)


def train(config, train_split, test_split, mean, std, seed: int, device: str = "cpu") -> list[dict]:
    """The whole recipe: per epoch ``{"epoch", "test_acc", "test_loss", "seconds"}`` (train and eval;
    the evaluation's accuracy is read on the host, which waits for the device)."""
    trainer = Trainer(config, *train_split, mean, std, seed, device)
    x_test = to_tensor(test_split[0], mean, std).to(device)
    y_test = torch.from_numpy(test_split[1].astype(np.int64)).to(device)
    history = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        train_acc, train_loss = trainer.epoch()
        acc, loss = trainer.evaluate(x_test, y_test)
        history.append({"epoch": epoch + 1, "train_acc": train_acc, "train_loss": train_loss, "test_acc": acc,
                        "test_loss": loss, "seconds": time.perf_counter() - start})
    return history
