"""mnist_dvc/feed.py: the batches `fit` trains on are the ones it makes from arrays, so the
weights come out byte for byte the same; only tf.data's autotuning is off."""

import warnings

import keras
import numpy as np

from mnist_dvc.feed import batches

IMAGES, BATCH = 300, 32  # 9 full batches and a partial one, as 60,000 / 128 has


def _arrays():
    """Images whose first pixel is their index, and labels that follow from it, so that a batch
    shows which images it holds and whether each kept its label."""
    rng = np.random.default_rng(0)
    x = rng.random((IMAGES, 6, 6, 1), dtype=np.float32)
    x[:, 0, 0, 0] = np.arange(IMAGES)
    y = keras.utils.to_categorical(np.arange(IMAGES) % 3, 3)
    return x, y


def _trained(feed_as_dataset: bool) -> tuple[list[np.ndarray], dict, list[str]]:
    """A small model with dropout, three shuffled epochs with validation, from seed 1: its
    weights, fit's per-epoch history (what DVCLive logs) and the warnings fit gave."""
    x, y = _arrays()
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adadelta(1.0),
        metrics=["accuracy"],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if feed_as_dataset:  # as stages/train.py feeds it
            history = model.fit(
                batches(x, y, BATCH, shuffle=True),
                epochs=3,
                shuffle=False,
                verbose=0,
                validation_data=batches(x, y, BATCH, shuffle=False),
            )
        else:
            history = model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_data=(x, y))
    return model.get_weights(), history.history, [str(w.message) for w in caught]


def test_fit_on_the_batches_gives_what_fit_on_arrays_gives():
    from_arrays, arrays_history, _ = _trained(False)
    from_batches, history, warned = _trained(True)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(from_arrays, from_batches, strict=True))
    assert history == arrays_history  # every epoch's loss and accuracy, validation's too
    assert not [message for message in warned if "shuffle" in message]


def test_unshuffled_batches_are_the_arrays_in_order_with_autotuning_off():
    x, y = _arrays()
    dataset = batches(x, y, BATCH, shuffle=False)
    assert dataset.options().autotune.enabled is False
    assert int(dataset.cardinality()) == 10  # known, so fit iterates it as it iterates arrays
    got = list(dataset.as_numpy_iterator())
    assert [len(xb) for xb, _ in got] == [BATCH] * 9 + [IMAGES - 9 * BATCH]
    assert np.array_equal(np.concatenate([xb for xb, _ in got]), x)
    assert np.array_equal(np.concatenate([yb for _, yb in got]), y)


def test_a_shuffled_epoch_holds_every_image_once_with_its_label():
    x, y = _arrays()
    ids, labels = [], []
    for xb, yb in batches(x, y, BATCH, shuffle=True).as_numpy_iterator():
        ids += xb[:, 0, 0, 0].astype(int).tolist()  # each image's index (_arrays)
        labels += yb.argmax(axis=1).tolist()
    assert ids != list(range(IMAGES))
    assert sorted(ids) == list(range(IMAGES))
    assert labels == [i % 3 for i in ids]
