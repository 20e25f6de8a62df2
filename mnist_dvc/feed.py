"""What `fit` reads: the batches Keras itself makes from NumPy arrays, with tf.data's autotuning
off.

Given NumPy arrays, Keras 3's `fit` builds a tf.data pipeline (its `ArrayDataAdapter`: a shuffled
permutation of the indices each epoch, batches gathered in a parallel map) and starts a new
iterator of it every epoch. Each iterator runs tf.data's autotuning in a thread of its own, and
destroying the previous epoch's iterator waits for that thread. Measured on a 2-core EPYC under
`numerics: portable`, that wait sometimes took 8-10 s with the process using no CPU at all,
in about one epoch of two (docs/performance.md). With autotuning off, the map's parallelism is
fixed, nothing waits, and the batches are the same ones in the same order: the same pipeline,
built by the same Keras code, so the model's bytes do not change.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Keras's own pipeline for NumPy arrays, so that the shuffling and batching are exactly what
# `fit(x, y, ...)` would do.
from mnist_dvc.private_apis import ArrayDataAdapter


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool) -> tf.data.Dataset:
    """The batches `fit(x, y, batch_size=batch_size, shuffle=shuffle)` would train on, as a
    dataset of a known number of batches (so that `fit` iterates it exactly as it iterates
    arrays) with tf.data's autotuning off. Pass it to `fit` with `shuffle=False`: it is
    shuffled already, and `fit` cannot shuffle a dataset (it only warns that it will not)."""
    adapter = ArrayDataAdapter(x, y, batch_size=batch_size, shuffle=shuffle)
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = adapter.get_tf_dataset().with_options(options)
    return dataset.apply(tf.data.experimental.assert_cardinality(adapter.num_batches))
