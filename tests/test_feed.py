"""mnist_dvc/feed.py: the batches `fit` trains on are the ones it makes from arrays, so the
weights come out byte for byte the same; only tf.data's autotuning is off."""

import keras
import numpy as np

from mnist_dvc.feed import batches

IMAGES, BATCH = 300, 32  # 9 full batches and a partial one, as 60,000 / 128 has


def _arrays():
    rng = np.random.default_rng(0)
    x = rng.random((IMAGES, 6, 6, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 3, IMAGES), 3)
    return x, y


def _trained_weights(feed_as_dataset: bool) -> list[np.ndarray]:
    """A small model with dropout, three shuffled epochs with validation, from seed 1."""
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
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adadelta(1.0))
    if feed_as_dataset:
        train = batches(x, y, BATCH, shuffle=True)
        model.fit(train, epochs=3, verbose=0, validation_data=batches(x, y, BATCH, shuffle=False))
    else:
        model.fit(x, y, batch_size=BATCH, epochs=3, verbose=0, validation_data=(x, y))
    return model.get_weights()


def test_fit_on_the_batches_gives_the_weights_fit_on_arrays_gives():
    from_arrays, from_batches = _trained_weights(False), _trained_weights(True)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(from_arrays, from_batches, strict=True))


def test_unshuffled_batches_are_the_arrays_in_order_with_autotuning_off():
    x, y = _arrays()
    dataset = batches(x, y, BATCH, shuffle=False)
    assert dataset.options().autotune.enabled is False
    assert int(dataset.cardinality()) == 10  # known, so fit iterates it as it iterates arrays
    got = list(dataset.as_numpy_iterator())
    assert [len(xb) for xb, _ in got] == [BATCH] * 9 + [IMAGES - 9 * BATCH]
    assert np.array_equal(np.concatenate([xb for xb, _ in got]), x)
    assert np.array_equal(np.concatenate([yb for _, yb in got]), y)


def test_a_shuffled_epoch_holds_every_image_once():
    x, y = _arrays()
    got = np.concatenate([xb for xb, _ in batches(x, y, BATCH, shuffle=True)])
    assert not np.array_equal(got, x)
    assert np.array_equal(
        np.sort(got.reshape(IMAGES, -1), axis=0), np.sort(x.reshape(IMAGES, -1), axis=0)
    )
