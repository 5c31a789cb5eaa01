"""The one predict path: a traced graph per model for small batches, with the eager model's answers."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from cifarmix import architectures, models


def test_small_batches_are_answered_by_one_traced_graph_with_the_eager_answers():
    model = architectures.build("resnet-cpu", widths=[8, 8, 8], head_width=8)
    rng = np.random.default_rng(0)
    for count in (1, 3, 7):
        images = rng.uniform(0, 255, (count, 32, 32, 3)).astype("float32")
        eager = model(images, training=False)
        answers = models.predict(model, images)
        for head in ("first", "second"):
            assert np.allclose(answers[head], np.asarray(eager[head]), atol=1e-5)
    function = models.compiled_call(model)
    assert function is models.compiled_call(model)
    assert function.experimental_get_tracing_count() == 1  # any batch size, one trace


def test_a_dropped_model_is_freed_with_its_graph():
    model = architectures.build("random")
    models.predict(model, np.zeros((1, 32, 32, 3), "float32"))
    alive = weakref.ref(model)
    assert alive() in models._COMPILED
    del model
    gc.collect()
    assert alive() is None
