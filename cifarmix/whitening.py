"""The frozen patch-whitening stem of ``resnet-cpu`` (option ``whiten``): its filters, computed from data.

The fast CIFAR-10 recipes start their nets with a fixed 2x2 convolution whose filters are the eigenvectors of the
training patches' covariance, each scaled by one over the square root of its eigenvalue (and each also negated,
so that a ReLU after it keeps both signs): every direction of a 2x2 patch comes out with unit variance, and the
first trained layers need not learn to undo the pixels' strong correlations. Here the patches come from *mixed*
training images (what the net sees), computed once when a run starts from scratch; the kernel is then a frozen
weight of the model, saved with its checkpoints and its best model.
"""

from __future__ import annotations

import numpy as np

from cifarmix import architectures, mixing

SAMPLE_PAIRS = 2000  # mixed training images whose patches are measured (2000 x 31 x 31 patches)
EPSILON = 5e-4  # added to each eigenvalue: directions of almost no variance are not blown up into noise


def patch_whitening_kernel(images: np.ndarray, patch: int = architectures.WHITENING_PATCH,
                           epsilon: float = EPSILON) -> np.ndarray:
    """The (patch, patch, channels, 2 * patch * patch * channels) kernel whitening the patches of ``images``
    ((N, H, W, C) floats, on the scale the layer sees): the whitening filters, then the same negated."""
    if images.ndim != 4 or images.shape[0] < 2:
        raise ValueError(f"patch whitening needs a batch of (N, H, W, C) images, N > 1; got shape {images.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(images.astype(np.float64), (patch, patch), axis=(1, 2))
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch * patch * images.shape[3])  # (kh, kw, c)
    centred = patches - patches.mean(axis=0)
    covariance = centred.T @ centred / len(centred)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    filters = eigenvectors / np.sqrt(np.clip(eigenvalues, 0, None) + epsilon)  # column k: direction k, scaled
    kernel = filters.reshape(patch, patch, images.shape[3], -1)  # Conv2D's (kh, kw, in, out) layout
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


def mixed_sample(groups: mixing.Groups, count: int = SAMPLE_PAIRS, seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    """``count`` mixed training images as the model's first layer sees them (pixels rescaled to [0, 1])."""
    first, second = mixing.fixed_pairs(groups, count, seed)
    return mixing.mix(groups.a_x[first], groups.b_x[second], alpha) / 255.0


def whiten_model(model, groups: mixing.Groups | None, seed: int = 0, alpha: float = 0.5) -> bool:
    """Set the whitening stem of ``model`` from mixed images of ``groups``; False when it has none."""
    try:
        layer = model.get_layer(architectures.WHITENING_LAYER)
    except ValueError:
        return False
    if groups is None:
        raise ValueError("this network's whitening stem is computed from training images: give their groups")
    kernel = patch_whitening_kernel(mixed_sample(groups, seed=seed, alpha=alpha))
    layer.set_weights([kernel])
    return True
