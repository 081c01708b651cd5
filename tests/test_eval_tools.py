"""The evaluation scripts of tools/ on small hand-made datasets, and on the official checkpoints when present."""

import json
import os
import sys
from pathlib import Path

import pytest

from minidistil import pipeline
from minidistil.metrics import binary_classification_report, squad_v1_evaluate

from pipeline_models import build_model_dir

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "eval"
sys.path.insert(0, str(TOOLS))

import eval_fill_mask  # noqa: E402
import eval_squad  # noqa: E402
import eval_sst2  # noqa: E402

SQUAD = [
    {"title": "Normans", "paragraphs": [
        {"context": "The Normans gave their name to Normandy, a region in France. Their leader was Rollo.",
         "qas": [
             {"id": "a1", "question": "Where is Normandy?", "answers": [{"text": "France", "answer_start": 53}]},
             {"id": "a2", "question": "Who was their leader?",
              "answers": [{"text": "Rollo", "answer_start": 78}, {"text": "Rollo.", "answer_start": 78}]},
         ]},
    ]},
    {"title": "Paris", "paragraphs": [
        {"context": "Paris is the capital and most populous city of France, on the Seine.",
         "qas": [
             {"id": "b1", "question": "What river?", "answers": [{"text": "the Seine", "answer_start": 59}]},
             {"id": "b2", "question": "Capital of?", "answers": [{"text": "France", "answer_start": 47}]},
         ]},
    ]},
]
SST2 = "sentence\tlabel\nit 's a charming journey . \t1\nbleak and desperate \t0\na masterpiece . \t1\ndull , dull , dull \t0\n"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-models")
    return {name: str(build_model_dir(name, root / name)) for name in ("mlm", "qa", "multilabel")}


def _json_out(capsys):
    return json.loads(capsys.readouterr().out)


def test_eval_squad_on_a_hand_made_dataset(dirs, tmp_path, capsys):
    data = tmp_path / "dev.json"
    data.write_text(json.dumps({"version": "1.1", "data": SQUAD}))
    predictions = tmp_path / "predictions.json"
    assert eval_squad.main(["--model", dirs["qa"], "--data", str(data), "--predictions", str(predictions),
                            "--backend", "numpy", "--batch-size", "3", "--json"]) == 0
    result = _json_out(capsys)
    written = json.loads(predictions.read_text())
    assert result["questions"] == 4 and sorted(written) == ["a1", "a2", "b1", "b2"]
    assert {k: result[k] for k in ("exact_match", "f1")} == pytest.approx(squad_v1_evaluate(SQUAD, written))
    qa = pipeline("question-answering", model=dirs["qa"])
    expected = qa(question="Capital of?", context=SQUAD[1]["paragraphs"][0]["context"], max_answer_len=30)
    assert written["b2"] == expected["answer"]
    # --limit scores only the questions asked.
    assert eval_squad.main(["--model", dirs["qa"], "--data", str(data), "--limit", "1", "--json"]) == 0
    assert _json_out(capsys)["questions"] == 1


def test_eval_sst2_on_a_hand_made_dataset(dirs, tmp_path, capsys):
    data = tmp_path / "dev.tsv"
    data.write_text(SST2)
    assert eval_sst2.main(["--model", dirs["multilabel"], "--data", str(data), "--json", "--batch-size", "3"]) == 0
    result = _json_out(capsys)
    classify = pipeline("text-classification", model=dirs["multilabel"])
    rows = eval_sst2.read_tsv(data)
    predicted = [0 if out["label"] == "toxic" else 1 for out in classify([s for s, _ in rows])]
    expected = binary_classification_report(predicted, [label for _, label in rows])
    assert {k: result[k] for k in expected} == expected and result["n"] == 4


def test_eval_sst2_refuses_a_file_without_the_header(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("it 's fine\t1\n")
    with pytest.raises(ValueError, match="expected a header"):
        eval_sst2.read_tsv(bad)


def test_fill_mask_card_comparison(dirs, capsys):
    card = [{"token_str": t, "token": i, "score": s} for t, i, s in eval_fill_mask.CARD]
    assert eval_fill_mask.compare(card)[0]
    assert not eval_fill_mask.compare([dict(card[0], score=card[0]["score"] + 1e-3)] + card[1:])[0]
    assert not eval_fill_mask.compare(card[::-1])[0]
    assert not eval_fill_mask.compare(card[:4])[0]
    # A random model does not reproduce the card: exit status 1 and a clear verdict.
    assert eval_fill_mask.main(["--model", dirs["mlm"]]) == 1
    assert "does NOT match the model card" in capsys.readouterr().out


# ------------------------------------------------------------------ published numbers (official checkpoints)


def official(name):
    """The official checkpoint's directory when it is on this machine (a directory or the HF cache), else skip."""
    from minidistil import ModelSourceError
    from minidistil.sources import resolve_model_dir

    try:
        return str(resolve_model_dir(name, download=False))
    except ModelSourceError:
        pytest.skip(f"the official checkpoint {name} is not in the HF cache here (no network to download it); "
                    f"the published number is checked where it is")


def test_distilbert_base_uncased_reproduces_its_card(capsys):
    assert eval_fill_mask.main(["--model", official("distilbert/distilbert-base-uncased")]) == 0, capsys.readouterr().out


@pytest.mark.slow
def test_sst2_english_gets_794_of_872(capsys):
    model = official("distilbert/distilbert-base-uncased-finetuned-sst-2-english")
    assert eval_sst2.main(["--model", model, "--json"]) == 0
    result = _json_out(capsys)
    assert (result["correct"], result["n"], result["predicted_positive"], result["true_positive"]) == (794, 872, 460, 413)


@pytest.mark.slow
@pytest.mark.parametrize("name, f1", [("distilbert/distilbert-base-uncased-distilled-squad", 86.9),
                                      ("distilbert/distilbert-base-cased-distilled-squad", 87.0)])
def test_squad_f1_is_the_published_one(capsys, name, f1):
    model = official(name)
    if os.environ.get("MINIDISTIL_FULL_EVAL") != "1":
        pytest.skip("the full SQuAD dev set takes hours on a CPU: set MINIDISTIL_FULL_EVAL=1 to run it")
    assert eval_squad.main(["--model", model, "--json"]) == 0
    assert _json_out(capsys)["f1"] == pytest.approx(f1, abs=1.0)
