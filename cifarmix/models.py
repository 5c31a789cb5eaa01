"""Loading, saving and asking two-head models: the one predict path that the app, CLI and evaluator share."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
import zipfile
from pathlib import Path

import keras
import numpy as np

from cifarmix.heads import HEADS


class ModelError(Exception):
    """A model file could not be loaded or does not follow the two-head contract."""


@contextlib.contextmanager
def precision_policy(name: str):
    """Build layers under Keras dtype policy ``name`` (e.g. ``mixed_bfloat16``), restoring the old one after."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras`` model safely and check it maps (N, 32, 32, 3) pixels to the two heads.

    Raises:
        ModelError: for a missing file, a file that is not a Keras model, or a model without both heads.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"No model file at {path}. Give a .keras file saved by cifarmix, or a run id.")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a Keras model file (expected a .keras archive saved by model.save).")
    import cifarmix.layers  # noqa: F401  (registers custom layers before deserialising)

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:
        raise ModelError(f"{path} could not be loaded as a Keras model ({type(error).__name__}: {error}).") from None
    check_contract(model, str(path))
    return model


def check_contract(model: keras.Model, origin: str = "the model") -> None:
    """Raise ModelError unless the model has 32x32x3 input and ``first`` / ``second`` 5-way outputs."""
    shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    names = set(output_names(model))
    if shape != (32, 32, 3) or not set(HEADS) <= names:
        raise ModelError(
            f"{origin} takes {shape} and returns {sorted(names)}; cifarmix models take (32, 32, 3) pixels and "
            f"return 'first' and 'second' heads."
        )


def output_names(model: keras.Model) -> list[str]:
    """The model's output names (dict keys for dict-output functional models)."""
    outputs = model.output
    if isinstance(outputs, dict):
        return list(outputs.keys())
    return list(getattr(model, "output_names", []) or [])


def save_atomically(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save to a temporary file beside ``path`` and rename it into place: a crash never leaves half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".keras", dir=path.parent)
    os.close(handle)
    try:
        model.save(temporary)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a model file is as readable as any other file
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Probabilities per head for float pixels [0, 255] of shape (N, 32, 32, 3) (or one (32, 32, 3) image).

    Returns:
        ``{"first": (N, 5), "second": (N, 5)}`` float32 arrays.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"expected images of shape (N, 32, 32, 3); got {images.shape}")
    if len(images) <= batch_size:
        # one small batch: a traced graph, not predict()'s set-up (anything else callable is called as it is)
        outputs = compiled_call(model)(images) if isinstance(model, keras.Model) else model(images, training=False)
    else:
        outputs = model.predict(images, batch_size=batch_size, verbose=0)
    return {head: np.asarray(outputs[head], dtype=np.float32) for head in HEADS}


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_COMPILED_LOCK = threading.Lock()


def compiled_call(model: keras.Model):
    """``model(images, training=False)`` as a ``tf.function`` traced once per model for any batch size.

    Eagerly, each call dispatches every layer's operations one by one from Python: for the champion and one
    image that costs ~7x the CPU of the traced graph (bench/predict_cost.py). Answers are the same (to float
    rounding). The function holds the model weakly, so a model dropped from a cache is freed with its graph.
    """
    with _COMPILED_LOCK:
        function = _COMPILED.get(model)
        if function is None:
            import tensorflow as tf

            held = weakref.ref(model)
            function = tf.function(lambda images: held()(images, training=False), reduce_retracing=True,
                                   input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
            _COMPILED[model] = function
    return function


class _Progress(keras.callbacks.Callback):
    """Reports the fraction of a prediction's batches done to ``report`` (e.g. a progress bar)."""

    def __init__(self, report, batches: int):
        super().__init__()
        self.report, self.batches = report, max(1, batches)

    def on_predict_batch_end(self, batch, logs=None):
        self.report(min(1.0, (batch + 1) / self.batches))


def predict_classes(model: keras.Model, dataset, verbose: int = 0, progress=None) -> dict[str, np.ndarray]:
    """Predicted class (0-4) per head for every item of a batched dataset, in one ``model.predict`` call.

    ``progress``, if given, is called with the fraction done (0-1] after each batch.
    """
    hooks = [] if progress is None else [_Progress(progress, len(dataset))]
    outputs = model.predict(dataset, verbose=verbose, callbacks=hooks)
    return {head: np.asarray(outputs[head]).argmax(axis=1) for head in HEADS}
