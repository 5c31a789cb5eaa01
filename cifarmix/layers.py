"""Custom Keras layers for cifarmix models, registered so ``.keras`` files load with ``safe_mode=True``.

Importing this module (``cifarmix/__init__.py`` does) registers every layer under the ``cifarmix`` package
name. The layers need the TensorFlow backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

# TensorFlow's FractionalMaxPool kernel only accepts these dtypes (no float16 / bfloat16).
_FMP_DTYPE = "float32"


def _pair_of_ratios(pooling_ratio: float | Sequence[float]) -> tuple[float, float]:
    """``pooling_ratio`` as a (rows, columns) pair of floats >= 1."""
    if isinstance(pooling_ratio, (int, float)):
        pair = (float(pooling_ratio), float(pooling_ratio))
    else:
        pair = tuple(float(ratio) for ratio in pooling_ratio)
    if len(pair) != 2 or min(pair) < 1.0:
        raise ValueError(f"pooling_ratio must be one number or two numbers >= 1; got {pooling_ratio!r}.")
    return pair


def fractional_output_size(size: int | None, ratio: float) -> int | None:
    """The size TensorFlow's FractionalMaxPool gives a dimension of ``size``: floor(size / ratio).

    The op stores ratios as float32, so the division uses the float32 value, exactly as the kernel does.
    """
    if size is None:
        return None
    return int(math.floor(size / float(np.float32(ratio))))


@keras.saving.register_keras_serializable(package="cifarmix")
class FractionalMaxPooling2D(keras.layers.Layer):
    """Fractional max pooling (Graham, 2014) over the two spatial axes of NHWC tensors.

    Wraps TensorFlow's ``FractionalMaxPool`` op (the op behind ``tf.nn.fractional_max_pool``), which shrinks
    each spatial size by a non-integer ``pooling_ratio`` to ``floor(size / ratio)``.

    * Training (``training=True``): fresh pseudo-random pooling regions on every step (op seeds 0, so the
      kernel draws them), the regularising behaviour of the paper. One region layout is drawn per call
      and shared by the whole batch, as the op does.
    * Inference (``training`` False or None): ``deterministic=True`` with the fixed ``seed`` pair, so the
      same input always gives the same output and saved models predict reproducibly. We call
      ``tf.raw_ops.FractionalMaxPool`` because ``tf.nn.fractional_max_pool``'s ``seed`` is mixed with the
      global TensorFlow seed, which would let ``tf.random.set_seed`` change a model's predictions.

    Mixed precision: the op has no float16 kernel, so the pooling runs in float32 and the result is cast
    back to the layer's compute dtype. The op has no XLA kernel either, so ``supports_jit`` is False and
    Keras' ``jit_compile="auto"`` leaves models holding this layer un-compiled.
    """

    def __init__(
        self,
        pooling_ratio: float | Sequence[float] = 2.0**0.5,
        pseudo_random: bool = True,
        overlapping: bool = True,
        seed: int = 1,
        **kwargs,
    ):
        """Pool by ``pooling_ratio`` (one number or (rows, columns)); ``seed`` fixes inference regions."""
        super().__init__(**kwargs)
        self.pooling_ratio = _pair_of_ratios(pooling_ratio)
        self.pseudo_random = bool(pseudo_random)
        self.overlapping = bool(overlapping)
        if int(seed) == 0:
            raise ValueError("seed must be non-zero: it fixes the pooling regions used at inference.")
        self.seed = int(seed)
        self.supports_jit = False
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs, training=None):
        """Pool ``inputs`` (N, H, W, C): random regions when training, fixed ones otherwise."""
        pooled, _, _ = tf.raw_ops.FractionalMaxPool(
            value=tf.cast(inputs, _FMP_DTYPE),
            pooling_ratio=[1.0, *self.pooling_ratio, 1.0],
            pseudo_random=self.pseudo_random,
            overlapping=self.overlapping,
            deterministic=not training,
            seed=0 if training else self.seed,
            seed2=0 if training else self.seed,
        )
        return tf.cast(pooled, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        """(N, floor(H / row ratio), floor(W / column ratio), C)."""
        batch, rows, columns, channels = input_shape
        row_ratio, column_ratio = self.pooling_ratio
        return (
            batch,
            fractional_output_size(rows, row_ratio),
            fractional_output_size(columns, column_ratio),
            channels,
        )

    def get_config(self):
        """Everything ``__init__`` needs to rebuild the layer."""
        config = super().get_config()
        config.update(
            {
                "pooling_ratio": list(self.pooling_ratio),
                "pseudo_random": self.pseudo_random,
                "overlapping": self.overlapping,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="cifarmix")
class HorizontalFlip(keras.layers.Layer):
    """Mirror NHWC images left-right (deterministic; used for test-time flip averaging)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="cifarmix")
class Translate(keras.layers.Layer):
    """Shift NHWC images by ``rows`` down and ``cols`` right, filling the border by reflection.

    Deterministic; used for test-time augmentation. Reflection matches the training augmentation
    (``mixing.augment``), and shifting a mixed image equals mixing the shifted components.
    """

    def __init__(self, rows: int = 0, cols: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.cols = int(rows), int(cols)

    def call(self, inputs):
        margin = max(abs(self.rows), abs(self.cols))
        if margin == 0:
            return inputs
        padded = keras.ops.pad(inputs, [[0, 0], [margin, margin], [margin, margin], [0, 0]], mode="reflect")
        top, left = margin - self.rows, margin - self.cols
        return padded[:, top:top + inputs.shape[1], left:left + inputs.shape[2], :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"rows": self.rows, "cols": self.cols}
