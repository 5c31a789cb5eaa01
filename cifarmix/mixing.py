"""Pair sampling and mixing: group A (classes 0-4) x group B (classes 5-9, relabelled 0-4).

A mixed image is ``alpha * a + (1 - alpha) * b`` in float32 pixels [0, 255]; alpha = 0.5 is the seeds'
plain average. Training draws fresh pairs every epoch (:class:`MixedPairs`); evaluation and validation
use pairs fixed by a seed (:func:`fixed_pairs`, :class:`FixedPairs`) so runs compare on identical images.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from cifarmix.heads import HEADS  # also read as mixing.HEADS (game.py)


@dataclass(frozen=True)
class Groups:
    """Component images by group. ``a_y`` holds labels 0-4, ``b_y`` holds labels 5-9 minus 5."""

    a_x: np.ndarray
    a_y: np.ndarray
    b_x: np.ndarray
    b_y: np.ndarray


def split_groups(x: np.ndarray, y: np.ndarray) -> Groups:
    """Split images into group A (labels 0-4) and group B (labels 5-9, relabelled 0-4)."""
    y = np.asarray(y).reshape(-1)
    in_a = y < 5
    if not in_a.any() or in_a.all():
        raise ValueError("mixing needs images of both groups (labels 0-4 and 5-9); one group is empty")
    return Groups(x[in_a], y[in_a], x[~in_a], y[~in_a] - 5)


# The weights of A the app offers and trains on (the Mixer's slider, the Train and Runs forms, the CLI): beyond
# these one photo all but hides the other.
ALPHA_MIN, ALPHA_MAX, ALPHA_STEP = 0.05, 0.95, 0.05


def check_alpha(alpha: float) -> float:
    """Validate a mixing weight for the arithmetic of a mix: the share of component A, strictly between 0 and 1."""
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"the mixing weight alpha must lie strictly between 0 and 1; got {alpha}")
    return alpha


def check_alpha_range(alpha: float) -> float:
    """Validate a mixing weight a person chose (to train, evaluate or draw with): ALPHA_MIN..ALPHA_MAX."""
    alpha = float(alpha)
    if not ALPHA_MIN <= alpha <= ALPHA_MAX:
        raise ValueError(f"the mixing weight alpha must lie in {ALPHA_MIN:g}..{ALPHA_MAX:g} (beyond, one image all "
                         f"but hides the other); got {alpha:g}")
    return alpha


def mix(a: np.ndarray, b: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Mix two uint8 (or float) image batches into float32 pixels in [0, 255]."""
    alpha = check_alpha(alpha)
    return (alpha * a.astype(np.float32) + (1.0 - alpha) * b.astype(np.float32)).astype(np.float32)


def fixed_pairs(groups: Groups, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``count`` (A, B) pairs drawn with replacement, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(groups.a_x), count), rng.integers(0, len(groups.b_x), count)


def one_hot(labels: np.ndarray, classes: int = 5) -> np.ndarray:
    """Float32 one-hot rows for integer labels."""
    return np.eye(classes, dtype=np.float32)[labels]


def augment(images: np.ndarray, rng: np.random.Generator, translate: int = 2, flip: bool = True) -> np.ndarray:
    """Random horizontal flips and translations (reflect padding), vectorised over the batch.

    Args:
        images: uint8 (N, 32, 32, 3).
        translate: maximum shift in pixels along each axis (0 disables).

    Returns:
        a new uint8 array of the same shape.
    """
    out = images
    if flip:
        flips = rng.random(len(images)) < 0.5
        out = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
    if translate > 0:
        size = images.shape[1]
        padded = np.pad(out, ((0, 0), (translate, translate), (translate, translate), (0, 0)), mode="reflect")
        dy = rng.integers(0, 2 * translate + 1, len(images))
        dx = rng.integers(0, 2 * translate + 1, len(images))
        rows = dy[:, None] + np.arange(size)[None, :]
        cols = dx[:, None] + np.arange(size)[None, :]
        out = padded[np.arange(len(images))[:, None, None], rows[:, :, None], cols[:, None, :]]
    return np.ascontiguousarray(out)


class _PairBatches(keras.utils.PyDataset):
    """Shared batching over the pair indices ``self.ia`` / ``self.ib`` that subclasses set."""

    def __init__(self, groups: Groups, batch_size: int, alpha: float, output_names=HEADS, **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
        self.groups = groups
        self.batch_size = int(batch_size)
        self.alpha = check_alpha(alpha)
        self.output_names = tuple(output_names)

    def _components(self, ia: np.ndarray, ib: np.ndarray, index: int):
        return self.groups.a_x[ia], self.groups.b_x[ib]

    def __len__(self) -> int:
        return int(np.ceil(len(self.ia) / self.batch_size))

    def __getitem__(self, index: int):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        ia, ib = self.ia[window], self.ib[window]
        a, b = self._components(ia, ib, index)
        labels = {"first": one_hot(self.groups.a_y[ia]), "second": one_hot(self.groups.b_y[ib])}
        targets = {name: labels[name.rsplit("_", 1)[-1]] for name in self.output_names}
        return mix(a, b, self.alpha), targets


class MixedPairs(_PairBatches):
    """Fresh random pairs every epoch (seeded by ``seed`` and the epoch number), optional augmentation.

    Args:
        groups: training components.
        batch_size: pairs per batch.
        steps_per_epoch: batches per epoch (``pairs per epoch = steps * batch_size``).
        alpha: mixing weight of component A.
        seed: base seed; epoch ``e`` uses pairs seeded by ``(seed, e)`` so a resumed run sees the same pairs.
        augment_translate: pixels of random translation applied to each component before mixing (0: none).
        augment_flip: random horizontal flips of each component before mixing.
        output_names: model output names to produce targets for (``aux1_first`` gets the ``first`` labels).
    """

    def __init__(self, groups: Groups, batch_size: int, steps_per_epoch: int, alpha: float = 0.5, seed: int = 0,
                 augment_translate: int = 0, augment_flip: bool = False, output_names=HEADS, epoch: int = 0,
                 **kwargs):
        super().__init__(groups, batch_size, alpha, output_names, **kwargs)
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be a positive integer; got {steps_per_epoch}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.seed = int(seed)
        self.translate = int(augment_translate)
        self.flip = bool(augment_flip)
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of ``epoch`` (deterministic given the seed)."""
        self.epoch = int(epoch)
        rng = np.random.default_rng((self.seed, self.epoch))
        count = self.steps_per_epoch * self.batch_size
        self.ia = rng.integers(0, len(self.groups.a_x), count)
        self.ib = rng.integers(0, len(self.groups.b_x), count)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _components(self, ia, ib, index):
        a, b = super()._components(ia, ib, index)
        if self.translate or self.flip:
            rng = np.random.default_rng((self.seed, self.epoch, index, 1))
            a = augment(a, rng, self.translate, self.flip)
            b = augment(b, rng, self.translate, self.flip)
        return a, b

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


class FixedPairs(_PairBatches):
    """The same pairs every time (validation and evaluation sets)."""

    def __init__(self, groups: Groups, batch_size: int, count: int, seed: int, alpha: float = 0.5,
                 output_names=HEADS, **kwargs):
        super().__init__(groups, batch_size, alpha, output_names, **kwargs)
        self.ia, self.ib = fixed_pairs(groups, count, seed)

    def labels(self) -> dict[str, np.ndarray]:
        """Integer labels 0-4 of every pair, per head, in batch order."""
        return {"first": self.groups.a_y[self.ia], "second": self.groups.b_y[self.ib]}


VALIDATION_SEED = 1  # every run's validation pairs, so runs are compared on the same mixes


def validation_pairs(x_val: np.ndarray, y_val: np.ndarray, count: int, alpha: float = 0.5,
                     batch_size: int = 500) -> FixedPairs:
    """The fixed validation mixes a run is scored on during training (and its mistakes are shown from)."""
    return FixedPairs(split_groups(x_val, y_val), batch_size=batch_size, count=count, seed=VALIDATION_SEED,
                      alpha=alpha)
