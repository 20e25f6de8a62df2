"""Fingerprints of the portable training computation, step by step: what the cross-CPU harness
(scripts/numerics_matrix.py) compares between machines, thread counts and emulated CPUs.

    python -m mnist_dvc.portable.fingerprint [--images N] [PREPARED_DIR]

prints one line, `FINGERPRINTS {json}`: for each named tensor, in the order a training step
computes them, the first 12 hex digits of the md5 of its bytes. Run it under the environment to
test (TF_NUM_INTRAOP_THREADS, an emulator). The names:

- `input`, `init`: the batch and the initial weights (the seeded initializers);
- `forward.<layer>`: each layer's output on the first 128 training images, in training mode
  (dropout's seeded masks included), then `logits`, `probabilities` and `loss` (per example);
- `gradient.<layer>`: the loss's gradient with respect to each layer's output;
- `gradient.<weight>`: with respect to each weight;
- `update.<weight>`: each weight after one Adadelta update with those gradients;
- `step`: the weights after one `fit` step (Keras's compiled train step, TensorFlow's graph
  optimizer included);
- `run`: the weights after one epoch of `fit` on N images (default 1024), batch 128.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from mnist_dvc import numerics

BATCH = 128
SEED = 42


def digest(value: object) -> str:
    return hashlib.md5(np.ascontiguousarray(np.asarray(value)).tobytes()).hexdigest()[:12]


def weights_digest(model: object) -> str:
    return digest(np.concatenate([np.ravel(w) for w in model.get_weights()]))


def fingerprints(prepared_dir: Path, images: int) -> dict[str, str]:
    """The fingerprints (the module's docstring) of the notebook CNN params.yaml describes."""
    import keras
    import tensorflow as tf

    from mnist_dvc import mnist, prepared
    from mnist_dvc.architectures import build_model
    from mnist_dvc.model import make_optimizer
    from mnist_dvc.params import load_params
    from mnist_dvc.portable import ops
    from mnist_dvc.portable.network import PortableModel, compile_portable

    p = load_params().train
    x, labels = prepared.load_split(prepared_dir, "train", count=max(images, BATCH))
    y = keras.utils.to_categorical(labels, mnist.NUM_CLASSES)

    def fresh() -> tuple[keras.Model, PortableModel]:
        keras.backend.clear_session()
        keras.utils.set_random_seed(SEED)
        model = build_model(x.shape[1:], p.model)
        return model, PortableModel(model)

    found = {"input": digest(x[:BATCH])}
    model, portable = fresh()
    found["init"] = weights_digest(model)
    batch, targets = tf.constant(x[:BATCH]), tf.constant(y[:BATCH])
    with tf.GradientTape() as tape:
        outputs = portable.layer_outputs(batch, training=True)
        loss = ops.crossentropy(targets, outputs[-1])
        mean = tf.reduce_sum(loss) / BATCH
    names = [layer.name for layer in model.layers]
    for name, output in zip(names, outputs, strict=True):
        found[f"forward.{name}"] = digest(output)
    found["forward.probabilities"] = digest(ops.softmax(outputs[-1]))
    found["forward.loss"] = digest(loss)
    variables = model.trainable_variables
    gradients = tape.gradient(mean, [*outputs, *variables])
    for name, gradient in zip(names, gradients[: len(names)], strict=True):
        found[f"gradient.{name}"] = digest(gradient)
    weight_grads = gradients[len(names) :]
    for variable, gradient in zip(variables, weight_grads, strict=True):
        found[f"gradient.{variable.path}"] = digest(gradient)
    optimizer = make_optimizer(p.optimizer)
    optimizer.apply_gradients(zip(weight_grads, variables, strict=True))
    for variable in variables:
        found[f"update.{variable.path}"] = digest(variable)

    for name, count in (("step", BATCH), ("run", images)):
        model, portable = fresh()
        compile_portable(portable, make_optimizer(p.optimizer))
        portable.fit(x[:count], y[:count], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        found[name] = weights_digest(model)
    return found


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parse.add_argument("prepared_dir", nargs="?", type=Path, default=Path("data/prepared"))
    parse.add_argument("--images", type=int, default=1024, help="for the short run (`run`)")
    args = parse.parse_args()
    numerics.configure("portable")
    print("FINGERPRINTS " + json.dumps(fingerprints(args.prepared_dir, args.images)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
