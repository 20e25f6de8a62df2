"""How large a network params.yaml asks for, from the params alone, before TensorFlow loads:
the side of each layer's output (a kernel or pool too large for what is left of 28x28 pixels
leaves none), and the memory a training step and an evaluation batch need against what this
machine can hold.

A small params.yaml can ask for any size: `train.batch_size: 1000000000` ended in std::bad_alloc
(SIGABRT) and `dense_units: 100000000` in an out-of-memory kill, minutes into the run. The
estimate counts float32 values: the weights four times in training (the weights, their
gradients, the optimizer's two accumulators), and per image the output of every layer, which
training keeps for its backward pass, twice (with its gradient). It leaves out what TensorFlow
allocates for its own work (convolutions' buffers, copies between ops), so it is a floor more
than a ceiling: what it refuses cannot run here, what it lets pass may still need more. Offered
to it is the machine's memory (or its container's limit) less RESERVE_BYTES for TensorFlow's
runtime and the data.

Only the standard library: params.py uses it while it validates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

IMAGE_SIDE = 28
CLASSES = 10
FLOAT_BYTES = 4
TRAINING_COPIES = 4  # weights, gradients and Adadelta's (or RMSprop's) accumulators
# TensorFlow's runtime (about 500 MB here) and the prepared data (220 MB, memory-mapped); on a
# machine of less than twice that, half of it.
RESERVE_BYTES = 1 << 30
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2: a number, or "max"
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)

Settings = Mapping[str, int]


class SizeError(ValueError):
    """A setting the network or this machine cannot hold; `key` names it (relative to
    train.model.<arch> for an architecture's setting, else dotted from the top)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Network:
    """An architecture's size: its weights, and the float32 values each image needs."""

    weights: int
    per_image: int


def _conv(side: int, kernel: int) -> int:
    return side - kernel + 1  # valid padding, stride 1


def notebook_cnn(s: Settings) -> tuple[list[tuple[str, int]], Network]:
    """The sides after each layer, and the size, of mnist_dvc/architectures/notebook_cnn.py."""
    k, p, f1, f2, d = (s[key] for key in ("kernel_size", "pool_size", "conv1_filters",
                                          "conv2_filters", "dense_units"))  # fmt: skip
    s1 = _conv(IMAGE_SIDE, k)
    s2 = _conv(s1, k)
    s3 = s2 // p
    sides = [("kernel_size", s1), ("kernel_size", s2), ("pool_size", s3)]
    flat = s3 * s3 * f2
    weights = (k * k + 1) * f1 + (k * k * f1 + 1) * f2 + (flat + 1) * d + (d + 1) * CLASSES
    activations = IMAGE_SIDE**2 + s1 * s1 * f1 + s2 * s2 * f2 + 2 * flat + 2 * d + CLASSES
    return sides, Network(weights, activations)


def mnist_convnet(s: Settings) -> tuple[list[tuple[str, int]], Network]:
    """The sides after each layer, and the size, of mnist_dvc/architectures/mnist_convnet.py."""
    k, p, f1, f2 = (s[key] for key in ("kernel_size", "pool_size", "conv1_filters",
                                       "conv2_filters"))  # fmt: skip
    s1 = _conv(IMAGE_SIDE, k)
    p1 = s1 // p
    s2 = _conv(p1, k)
    p2 = s2 // p
    sides = [("kernel_size", s1), ("pool_size", p1), ("kernel_size", s2), ("pool_size", p2)]
    flat = p2 * p2 * f2
    weights = (k * k + 1) * f1 + (k * k * f1 + 1) * f2 + (flat + 1) * CLASSES
    activations = IMAGE_SIDE**2 + s1 * s1 * f1 + p1 * p1 * f1 + s2 * s2 * f2 + 2 * flat + CLASSES
    return sides, Network(weights, activations)


ARCHITECTURES: dict[str, Callable[[Settings], tuple[list[tuple[str, int]], Network]]] = {
    "notebook_cnn": notebook_cnn,
    "mnist_convnet": mnist_convnet,
}
# The settings whose size is in proportion to the memory, per architecture.
SCALING = {
    "notebook_cnn": ("conv1_filters", "conv2_filters", "dense_units"),
    "mnist_convnet": ("conv1_filters", "conv2_filters"),
}


def check_layers(arch: str, settings: Settings) -> Network:
    """The network's size; SizeError naming the kernel or pool size that leaves no pixels."""
    sides, network = ARCHITECTURES[arch](settings)
    trail = [IMAGE_SIDE]
    for key, side in sides:
        if side < 1:
            path = " -> ".join(map(str, trail))
            raise SizeError(
                key,
                f"{settings[key]} leaves no pixels: the layers before it leave "
                f"{trail[-1]}x{trail[-1]} of the 28x28 image ({path}); lower it or the "
                "kernel and pool sizes",
            )
        trail.append(side)
    return network


def training_bytes(network: Network, batch: int) -> int:
    """Memory a training step of `batch` images needs (the module's doc says what is counted)."""
    return FLOAT_BYTES * (TRAINING_COPIES * network.weights + 2 * batch * network.per_image)


def scoring_bytes(network: Network, batch: int) -> int:
    """Memory a prediction on `batch` images needs: no gradients, no optimizer."""
    return FLOAT_BYTES * (network.weights + batch * network.per_image)


def machine_memory() -> int:
    """This machine's memory in bytes, or its container's limit where that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = [physical]
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits)


def budget(memory: int) -> int:
    """What of `memory` a training may take: all but RESERVE_BYTES (or half, if that is less)."""
    return max(memory - RESERVE_BYTES, memory // 2)


def shown_bytes(count: int) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:,.1f} {unit}"
    return f"{count:,} bytes"


def largest_fitting(cost: Callable[[int], int], limit: int, above: int) -> int:
    """The largest value v below `above` with cost(v) <= limit, for a cost that never falls as v
    grows (as with every setting SCALING names, and the batches); 0 if none fits."""
    low, high = 0, above  # cost(low) <= limit < cost(high), or low is 0
    if cost(0) > limit:
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= limit else (low, middle)
    return low


def check_memory(
    arch: str, settings: Settings, batches: Mapping[str, int], images: Mapping[str, int]
) -> None:
    """SizeError naming the setting that asks for more memory than this machine has (`budget`),
    with the largest value of it that fits. `batches` holds train.batch_size and
    evaluate.batch_size, `images` how many images each sees at most (a batch is never larger):
    training steps on the training images, and predictions on the test images, both in
    `train` (its validation) and in `evaluate`."""
    memory = machine_memory()
    limit = budget(memory)
    train, test = images["train"], images["test"]

    def needed(values: Mapping[str, int]) -> int:
        network = check_layers(arch, values)
        batch, scored = values["train.batch_size"], values["evaluate.batch_size"]
        return max(
            training_bytes(network, min(batch, train)),
            scoring_bytes(network, min(batch, test)),
            scoring_bytes(network, min(scored, test)),
        )

    values = {**settings, **batches}
    total = needed(values)
    if total <= limit:
        return
    keys = (*batches, *SCALING[arch])
    # The setting to name: the one that accounts for most of it (what setting it to 1 saves).
    key = max(keys, key=lambda each: total - needed({**values, each: 1}))
    fits = largest_fitting(lambda v: needed({**values, key: v}), limit, values[key])
    at_most = f"at most {fits:,} fits here" if fits >= 1 else "other settings must shrink too"
    raise SizeError(
        key,
        f"{values[key]:,} needs about {shown_bytes(total)} of memory, more than the "
        f"{shown_bytes(limit)} this machine has for it ({shown_bytes(memory)} in all); {at_most}",
    )
