"""The model catalog: a malformed model card costs only that model's extra facts, never a page or a command."""

from __future__ import annotations

import json
import shutil

import pytest

from cifarmix import catalog, cli

BAD_CARDS = {
    "a list": "[1, 2, 3]",
    "evaluation not an object": '{"evaluation": "oops"}',
    "accuracy not a number": '{"evaluation": {"mean_accuracy": "abc"}, "title": "Abc"}',
    "accuracy NaN": '{"evaluation": {"mean_accuracy": NaN}}',
    "accuracy out of range": '{"evaluation": {"mean_accuracy": 7}}',
    "not JSON": "{not json",
    "a title that is not text": '{"title": {"x": 1}}',
    "empty file": "",
}


@pytest.fixture
def models_dir(untrained_model_file, tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("CIFARMIX_MODELS_DIR", str(root))
    return root


def ship(root, name: str, card_text: str | None, model_file) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    shutil.copy(model_file, folder / catalog.MODEL_FILE)
    if card_text is not None:
        (folder / catalog.CARD_FILE).write_text(card_text)


@pytest.mark.parametrize("case", list(BAD_CARDS))
def test_a_malformed_card_leaves_its_model_listed_and_usable(case, models_dir, untrained_model_file):
    ship(models_dir, "broken", BAD_CARDS[case], untrained_model_file)
    ship(models_dir, "good", json.dumps({"title": "Good", "evaluation": {"mean_accuracy": 0.5}}), untrained_model_file)
    entries = {entry.reference: entry for entry in catalog.shipped()}
    assert entries["good"].title == "Good — 50.0% on the test protocol" and entries["good"].problem is None
    broken = entries["broken"]
    assert "%" not in broken.title and "nan" not in broken.title.lower()
    assert broken.load() is not None  # the model itself stays usable
    if case in ("a list", "evaluation not an object", "not JSON", "empty file"):
        assert "card.json" in broken.problem


def test_evaluate_a_model_whose_card_is_malformed_works(models_dir, untrained_model_file, tiny_data, capsys):
    ship(models_dir, "champion", "[1, 2, 3]", untrained_model_file)
    assert cli.main(["evaluate", "champion", "--repeats", "1", "--pairs", "20", "--json", "--no-store"]) == 0
    assert "mean_accuracy" in capsys.readouterr().out


def test_a_card_title_and_description_are_bounded_plain_text():
    long = "x" * 100_000
    assert len(catalog.bounded_text(long, catalog.TITLE_LIMIT)) == catalog.TITLE_LIMIT
    assert catalog.bounded_text("two\nlines  and\ttabs", 60) == "two lines and tabs"
    assert catalog.card_description({"description": 5}) == ""
