"""The models shipped in artifacts/models/: each loads as the brief says, answers as the two heads, and its
card holds what a reader needs (the command, the machine, the full protocol result)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SHIPPED = Path(__file__).resolve().parent.parent / "artifacts" / "models"
FOLDERS = sorted(folder for folder in SHIPPED.glob("*") if (folder / "model.keras").is_file())
MAX_MODEL_MB = 50


def test_every_shipped_model_has_a_card_and_the_table_lists_it():
    table = (SHIPPED / "README.md").read_text() if FOLDERS else ""
    for folder in FOLDERS:
        assert (folder / "card.json").is_file(), f"{folder.name} has no card.json"
        assert f"| `{folder.name}` |" in table, f"{folder.name} is missing from artifacts/models/README.md"


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_a_shipped_model_loads_safely_and_answers_with_two_heads(folder):
    import keras

    import cifarmix  # noqa: F401  (registers the custom layers)

    path = folder / "model.keras"
    assert path.stat().st_size < MAX_MODEL_MB * 2**20
    model = keras.saving.load_model(path, safe_mode=True)
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    answer = model.predict(pixels, verbose=0)
    assert set(answer) == {"first", "second"}
    for head in ("first", "second"):
        assert answer[head].shape == (3, 5) and np.allclose(np.asarray(answer[head]).sum(axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_a_shipped_models_card_records_the_command_machine_and_full_protocol(folder):
    card = json.loads((folder / "card.json").read_text())
    assert card["name"] == folder.name and card["training_command"].startswith("python -m cifarmix train")
    assert card["machine"] and card["data_copy"] and card["train_wall_minutes"] > 0 and card["pairs_seen"] > 0
    result = card["evaluation"]
    assert (result["repeats"], result["pairs"], result["alpha"]) == (10, 10_000, 0.5)
    assert len(result["per_repeat"]) == 10 and 0.2 < result["mean_accuracy"] <= 1
    for head in ("first", "second"):
        assert np.array(result[f"confusion_{head}"]).sum() == 100_000
