"""`minidistil init` and fresh_head=True: checkpoints with a random head, marked untrained everywhere."""

import json
import warnings

import numpy as np
import pytest

from minidistil import DistilBertForTokenClassification, DistilBertModel, pipeline
from minidistil.errors import MissingHeadError
from minidistil.modeling.initialization import UNTRAINED_HEAD_KEY, random_params
from minidistil.pipelines import PipelineInputError
from minidistil.untrained import write_untrained_checkpoint

from pipeline_models import build_model_dir
from test_cli import run

LABELS = "O,B-PER,I-PER,B-LOC,I-LOC"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small encoder-only checkpoint (DistilBertModel) with a tokenizer."""
    return build_model_dir("base", tmp_path_factory.mktemp("untrained") / "base")


def test_init_writes_an_encoder_with_a_random_head_marked_untrained(capsys, monkeypatch, base, tmp_path):
    out_dir = tmp_path / "ner-demo"
    code, out, err = run(capsys, monkeypatch, "init", out_dir, "--task", "ner", "--from", base, "--labels", LABELS)
    assert code == 0, err
    assert out.startswith(f"wrote {out_dir} (ner head, labels O, B-PER, I-PER, B-LOC, I-LOC")
    assert "UNTRAINED ner head" in err and "predictions mean nothing" in err
    config = json.loads((out_dir / "config.json").read_text())
    assert config[UNTRAINED_HEAD_KEY] == "token_classification"
    assert config["architectures"] == ["DistilBertForTokenClassification"]
    assert list(config["id2label"].values()) == LABELS.split(",")
    assert {"vocab.txt", "tokenizer_config.json", "model.safetensors"} <= {p.name for p in out_dir.iterdir()}

    with pytest.warns(UserWarning, match="untrained token classification head"):
        model = DistilBertForTokenClassification.from_pretrained(out_dir, backend="numpy")
    encoder = DistilBertModel.from_pretrained(base, backend="numpy")
    for name, value in encoder.params.items():  # the encoder is the source's, unchanged
        assert np.array_equal(model.params[name], value), name
    head = random_params(model.config, 0, "token_classification", encoder=False)
    assert all(np.array_equal(model.params[name], value) for name, value in head.items())

    code, out, err = run(capsys, monkeypatch, "ner", "--model", out_dir, "--json", "Wolfgang lives in Berlin")
    assert code == 0 and isinstance(json.loads(out), list)
    assert "untrained token classification head" in err  # every use says so


@pytest.mark.parametrize("task, run_it", [
    ("fill-mask", ["fill-mask", "A [MASK]."]),
    ("classify", ["classify", "Fine."]),
    ("qa", ["qa", "-q", "Who?", "-c", "Rollo led the Normans."]),
])
def test_init_makes_every_head_command_runnable(capsys, monkeypatch, base, tmp_path, task, run_it):
    code, _, err = run(capsys, monkeypatch, "init", tmp_path / task, "--task", task, "--from", base)
    assert code == 0, err
    code, out, err = run(capsys, monkeypatch, *run_it[:1], "--model", tmp_path / task, *run_it[1:])
    assert code == 0 and out, err


def test_init_with_the_installed_minilm_by_default(capsys, monkeypatch, tmp_path, minilm_dir):
    code, out, err = run(capsys, monkeypatch, "init", tmp_path / "demo", "--task", "classify")
    assert code == 0 and "encoder from sentence-transformers/all-MiniLM-L6-v2" in out, err
    code, out, err = run(capsys, monkeypatch, "classify", "--model", tmp_path / "demo", "--top-k", "0", "Fine.")
    assert code == 0 and sorted(line.split("\t")[0] for line in out.splitlines()) == ["LABEL_0", "LABEL_1"]


def test_init_refuses_to_overwrite_and_checks_its_arguments(capsys, monkeypatch, base, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, monkeypatch, "init", tmp_path / "taken", "--task", "ner", "--from", base)
    assert code == 1 and "already exists and is not an empty directory" in err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    code, _, err = run(capsys, monkeypatch, "init", tmp_path / "a", "--task", "qa", "--from", base, "--labels", "X,Y")
    assert code == 1 and "has no labels to set" in err
    code, _, err = run(capsys, monkeypatch, "init", tmp_path / "b", "--task", "ner", "--from", base, "--labels", "X,X")
    assert code == 1 and "labels must be distinct non-empty names" in err
    code, _, err = run(capsys, monkeypatch, "init", tmp_path / "c", "--task", "summarize", "--from", base)
    assert code == 2 and "invalid choice" in err
    with pytest.raises(PipelineInputError, match="needs no head"):
        write_untrained_checkpoint(tmp_path / "d", "sentence-embedding", base)


def test_pipeline_fresh_head_loads_a_random_head_and_says_so(base):
    with pytest.raises(MissingHeadError, match="pass fresh_head=True"):
        pipeline("ner", model=str(base), backend="numpy")
    with pytest.warns(UserWarning, match="starts from random weights .*untrained"):
        tagger = pipeline("ner", model=str(base), backend="numpy", fresh_head=True)
    assert isinstance(tagger("Wolfgang lives in Berlin"), list)


def test_pipeline_fresh_head_with_a_model_object_is_refused(base):
    from minidistil import DistilBertTokenizerFast

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = DistilBertForTokenClassification.from_pretrained(base, backend="numpy", fresh_head=True)
    tokenizer = DistilBertTokenizerFast.from_pretrained(base)
    with pytest.raises(PipelineInputError, match="fresh_head=True applies when the pipeline loads the model"):
        pipeline("ner", model=model, tokenizer=tokenizer, fresh_head=True)
    assert pipeline("ner", model=model, tokenizer=tokenizer)("Berlin") is not None
