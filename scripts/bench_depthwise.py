"""Depthwise convolution: XLA's grouped convolution vs ``DepthwiseConv``, side by side.

    python scripts/bench_depthwise.py                 # batch 128, 20 calls x 5 repeats
    python scripts/bench_depthwise.py --repeats 9

Times forward + backward (gradients of input and kernel) of each depthwise
layer of ``mnist_tiny_2k`` at its input shape, once as
``jax.lax.conv_general_dilated(..., feature_group_count=C)`` (what
``nn.Conv(feature_group_count=C)`` runs) and once as
``tinyjax.models.cnn.DepthwiseConv`` (a sum of k*k shifted products), after
a compile-and-warm-up call; the rows' repeats are interleaved and the median
is reported. Prints a markdown table of ms per call and the speed-up.
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp

from tinyjax.models.cnn import DepthwiseConv

from timing import interleaved_medians  # scripts/timing.py, beside this file

# (input H = W, channels, padding) of mnist_tiny_2k's depthwise layers.
LAYERS = ((26, 16, 0), (12, 16, 0), (5, 24, 1))


def timed(f, x, w, calls: int):
    """A warmed-up ``run()`` of ``calls`` forward + backward passes of ``f(x, w)``."""
    g = jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))
    jax.block_until_ready(g(x, w))

    def run():
        for _ in range(calls):
            out = g(x, w)
        jax.block_until_ready(out)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="images per call")
    parser.add_argument("--calls", type=int, default=20, help="forward + backward calls per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median reported)")
    args = parser.parse_args()
    runners = {}
    for size, c, p in LAYERS:
        x = jax.random.normal(jax.random.key(0), (args.batch_size, size, size, c))
        w = jax.random.normal(jax.random.key(1), (3, 3, 1, c))
        grouped = lambda x, w, p=p: jax.lax.conv_general_dilated(
            x, w, (1, 1), [(p, p), (p, p)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=x.shape[-1])
        ours = lambda x, w, p=p: DepthwiseConv(w.shape[-1], 3, 1, p).apply({"params": {"kernel": w}}, x)
        name = f"{args.batch_size}x{size}x{size}x{c}, 3x3, padding {p}"
        runners[name, "grouped"] = timed(grouped, x, w, args.calls)
        runners[name, "ours"] = timed(ours, x, w, args.calls)
    ms = {key: seconds / args.calls * 1000 for key, seconds in interleaved_medians(runners, args.repeats).items()}
    print(f"# Depthwise conv forward + backward, ms per call, {args.calls} calls x {args.repeats} repeats (median)")
    print(f"# {platform.processor() or platform.machine()}, {jax.device_count()} {jax.default_backend()} "
          f"device(s), jax {jax.__version__}\n")
    print("| layer input | grouped conv (ms) | DepthwiseConv (ms) | speed-up |")
    print("|---|---:|---:|---:|")
    for name in dict.fromkeys(name for name, _ in runners):
        g, o = ms[name, "grouped"], ms[name, "ours"]
        print(f"| {name} | {g:.2f} | {o:.2f} | {g / o:.1f}x |")


if __name__ == "__main__":
    main()
