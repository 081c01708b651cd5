"""The opt-in int8 model: from_pretrained/pipeline/CLI `quantize="int8"`, its accuracy on real weights, its errors.

Accuracy is measured on the real all-MiniLM-L6-v2 weights against the float32 model (itself within
1e-4 of sentence-transformers, tests/test_minilm.py): every sentence of a varied set keeps a cosine
of at least 0.99 with its float32 embedding, and the README's semantic search keeps its ranking.
The kernels' exactness is tests/test_kernels_int8.py.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from minidistil import DistilBertForSequenceClassification, DistilBertModel, pipeline
from minidistil.errors import QuantizationError
from minidistil.kernels import reference
from minidistil.modeling.config import DistilBertConfig
from minidistil.pipelines import PipelineInputError

CPU_BACKENDS = ["numpy", "numba"]
MIN_COSINE = 0.99
SENTENCES = [  # short and long, questions, numbers, names, accents, code, shouting, repetition, one word
    "A man is eating food.",
    "A man is eating pasta.",
    "The girl is carrying a baby.",
    "A cheetah is running behind its prey.",
    "Someone is playing the guitar.",
    "Which animal purrs?",
    "Hi",
    "The quick brown fox jumps over the lazy dog " * 6,
    "In 1969, Apollo 11 landed on the Moon at 20:17 UTC, 384,400 km from Earth.",
    "Zürich, São Paulo and Kraków are cities; naïve café owners serve crème brûlée.",
    "def f(x): return x ** 2 + 3 * x - 1  # a quadratic",
    "WHY IS EVERYONE SHOUTING IN THIS THREAD?!",
    "buffalo buffalo buffalo buffalo buffalo buffalo buffalo buffalo",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in "
    "France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway who, under "
    "their leader Rollo, agreed to swear fealty to King Charles III of West Francia.",
    "I didn't like the movie at all; the plot was thin and the acting was wooden.",
    "Best purchase ever!!! Would buy again :)",
    "What is the capital of Australia?",
]
SEARCH_QUERY = "A man is eating food."
SEARCH_CORPUS = ["A man is eating pasta.", "A man is riding a horse.", "The girl is carrying a baby.",
                 "Someone is playing the guitar.", "A cheetah is running behind its prey."]


def _cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _weights_bytes(model):
    return sum(v.nbytes for v in model.runner.prepared.values())


@pytest.fixture(scope="module")
def float32_embeddings(minilm_dir):
    return pipeline("sentence-embedding", model=str(minilm_dir), backend="numpy")(SENTENCES)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_minilm_int8_embeddings_stay_within_cosine_0_99(minilm_dir, float32_embeddings, backend):
    embed = pipeline("sentence-embedding", model=str(minilm_dir), backend=backend, quantize="int8")
    cosines = _cosines(embed(SENTENCES), float32_embeddings)
    worst = int(np.argmin(cosines))
    print(f"MiniLM int8 on {backend}: worst cosine with float32 {cosines[worst]:.5f} ({SENTENCES[worst][:40]!r}), "
          f"median {np.median(cosines):.5f}")
    assert cosines.min() >= MIN_COSINE, f"{SENTENCES[worst]!r}: cosine {cosines[worst]:.5f}"


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_minilm_int8_keeps_the_readme_search_ranking(minilm_dir, backend):
    rankings = {}
    for quantize in (None, "int8"):
        embed = pipeline("sentence-embedding", model=str(minilm_dir), backend=backend, quantize=quantize)
        vectors = embed([SEARCH_QUERY] + SEARCH_CORPUS)
        scores = _cosines(vectors[:1], vectors[1:])
        rankings[quantize] = [SEARCH_CORPUS[i] for i in np.argsort(-scores)]
    assert rankings["int8"] == rankings[None]
    assert rankings[None][:3] == ["A man is eating pasta.", "A man is riding a horse.", "A cheetah is running behind its prey."]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_minilm_int8_weights_take_at_most_30_percent(minilm_dir, backend):
    fp32 = DistilBertModel.from_pretrained(minilm_dir, backend=backend)
    int8 = DistilBertModel.from_pretrained(minilm_dir, backend=backend, quantize="int8")
    ratio = _weights_bytes(int8) / _weights_bytes(fp32)
    print(f"MiniLM prepared weights on {backend}: int8 {_weights_bytes(int8) / 2**20:.1f} MiB, "
          f"float32 {_weights_bytes(fp32) / 2**20:.1f} MiB ({ratio:.1%})")
    assert ratio <= 0.30
    assert "quantize='int8'" in repr(int8) and "quantize" not in repr(fp32)


def test_numba_and_numpy_int8_models_agree(minilm_dir):
    """Same integers given the same inputs (test_kernels_int8.py); across a whole model the float32 parts
    differ in rounding, which can move an activation across a rounding boundary of its quantization, so
    the two backends agree as closely as each agrees with float32, not to 1e-6."""
    ours, ref = (pipeline("sentence-embedding", model=str(minilm_dir), backend=b, quantize="int8")(SENTENCES)
                 for b in CPU_BACKENDS)
    assert _cosines(ours, ref).min() >= MIN_COSINE


def test_every_head_runs_in_int8_and_stays_close():
    config = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=3,
                              max_position_embeddings=16)
    ids = np.random.default_rng(0).integers(0, 100, (2, 7))
    fp32 = DistilBertForSequenceClassification(config, backend="numpy", seed=1)
    int8 = DistilBertForSequenceClassification(config, fp32.params, backend="numba", quantize="int8")
    assert _cosines(int8(input_ids=ids).logits, fp32(input_ids=ids).logits).min() >= 0.98
    assert set(int8.runner.matrices) >= {"pre_classifier.weight", "classifier.weight", "embeddings.word_embeddings.weight"}


def test_unknown_quantize_mode_is_a_named_error(minilm_dir):
    with pytest.raises(QuantizationError, match="quantize='int4' is not available on backend 'numpy'"):
        DistilBertModel.from_pretrained(minilm_dir, backend="numpy", quantize="int4")


def test_a_backend_without_int8_says_so(monkeypatch):
    class NoInt8(reference.NumpyOps):
        quantize_modes = ()

    from minidistil.modeling import runner

    monkeypatch.setattr(runner, "get_ops", lambda backend, threads: NoInt8())
    with pytest.raises(QuantizationError, match="not available on backend 'numpy' \\(it offers: none\\)"):
        DistilBertModel(DistilBertConfig(vocab_size=10, dim=8, n_heads=2, hidden_dim=16, n_layers=1), quantize="int8")


def test_weights_that_cannot_be_quantized_are_named():
    model = DistilBertModel(DistilBertConfig(vocab_size=10, dim=8, n_heads=2, hidden_dim=16, n_layers=1), backend="numpy")
    params = dict(model.params)
    params["transformer.layer.0.ffn.lin1.weight"] = params["transformer.layer.0.ffn.lin1.weight"].copy()
    params["transformer.layer.0.ffn.lin1.weight"][3, 1] = np.nan
    with pytest.raises(QuantizationError, match="cannot quantize the model to int8: cannot quantize "
                                                "'transformer.layer.0.ffn.lin1.weight': 1 of its 16 rows"):
        DistilBertModel(model.config, params, backend="numpy", quantize="int8")


def test_pipeline_quantize_needs_a_model_it_loads(minilm_dir):
    model = DistilBertModel.from_pretrained(minilm_dir, backend="numpy")
    with pytest.raises(PipelineInputError, match="quantize= applies when the pipeline loads the model"):
        pipeline("sentence-embedding", model=model, tokenizer=str(minilm_dir), quantize="int8")


def test_cli_quantize_int8(minilm_dir):
    code = "import sys; from minidistil.cli import main; sys.exit(main())"
    runs = {}
    for extra in ([], ["--quantize", "int8"]):
        proc = subprocess.run([sys.executable, "-c", code, "embed", "--model", str(minilm_dir), "--backend", "numpy",
                               *extra, SENTENCES[8]], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        runs[tuple(extra)] = np.array(json.loads(proc.stdout))
    assert _cosines(runs[("--quantize", "int8")], runs[()]) >= MIN_COSINE
    proc = subprocess.run([sys.executable, "-c", code, "embed", "--quantize", "int4", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'int4'" in proc.stderr
