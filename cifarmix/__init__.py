"""cifarmix: the mixed CIFAR-10 task — data, mixing, architectures, training, evaluation and the run store.

Importing the package registers its custom Keras layers, so shipped models load with
``keras.saving.load_model(path, safe_mode=True)`` after ``import cifarmix``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI

from cifarmix.quiet import quiet_import_banner  # noqa: E402

with quiet_import_banner():  # TensorFlow's import banner ignores TF_CPP_MIN_LOG_LEVEL since 2.20
    import tensorflow  # noqa: F401

from cifarmix import layers  # noqa: E402,F401  (registers custom layers)

__version__ = "0.1.0"
