"""The names the pipeline takes from inside Keras and TensorFlow, where neither publishes one that
does the job: in one module, so that an upgrade that moves or changes one breaks here, by name,
and tests/test_private_apis.py says which and where to look. Each says why no public API
serves. (mnist-serve's one private name, uvicorn's HTTP protocol, is in
mnist_dvc/serving/protocol.py: no stage imports the server.)
"""

from __future__ import annotations

# model.h5 in the legacy H5 layout that Keras 2's `model.save_weights("model.h5")` wrote, which
# the notebook's consumers load: Keras 3's public `save_weights` writes only its `.weights.h5`
# layout, and its legacy writer has no public name.
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

# Keras's own tf.data pipeline for NumPy arrays, so that the batches are exactly those of
# `fit(x, y)` (the shuffled permutation, the batching); it has no public name.
from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

# TensorFlow's writer of a SavedModel's fingerprint.pb, the one `tf.saved_model.save` calls,
# to write it again for a renumbered saved_model.pb: it has no public name.
from tensorflow.python.saved_model.fingerprinting_utils import write_fingerprint

__all__ = ["ArrayDataAdapter", "save_weights_to_hdf5_group", "write_fingerprint"]
