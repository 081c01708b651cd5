"""The small seeded DistilBERT checkpoints the pipeline goldens were made with.

Nothing here is stored: `build_model_dir` regenerates a checkpoint directory
(config.json, model.safetensors, vocab.txt, tokenizer_config.json) from its
spec with minidistil.modeling.initialization.random_params. tools/goldens/make_pipeline_goldens.py
loads the same directories into the reference; tests/test_pipelines.py into minidistil.
"""

from pathlib import Path

VOCAB = Path(__file__).resolve().parent / "data" / "bert-base-uncased-vocab.txt"

_BASE = dict(vocab_size=30522, max_position_embeddings=512, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
# std 0.5 (not the reference's 0.02) keeps logits well apart, so that rankings and argmaxes do not hinge
# on float32 rounding differences between two implementations.
STD = 0.5

SPECS = {
    "mlm": dict(head="masked_lm", seed=11, config=dict(_BASE, architectures=["DistilBertForMaskedLM"])),
    "classifier": dict(
        head="sequence_classification",
        seed=12,
        config=dict(_BASE, id2label={"0": "NEGATIVE", "1": "NEUTRAL", "2": "POSITIVE"},
                    label2id={"NEGATIVE": 0, "NEUTRAL": 1, "POSITIVE": 2},
                    architectures=["DistilBertForSequenceClassification"]),
    ),
    "regressor": dict(
        head="sequence_classification",
        seed=13,
        config=dict(_BASE, id2label={"0": "SCORE"}, label2id={"SCORE": 0},
                    architectures=["DistilBertForSequenceClassification"]),
    ),
    "multilabel": dict(
        head="sequence_classification",
        seed=14,
        config=dict(_BASE, id2label={"0": "toxic", "1": "funny"}, label2id={"toxic": 0, "funny": 1},
                    problem_type="multi_label_classification",
                    architectures=["DistilBertForSequenceClassification"]),
    ),
    "ner": dict(
        head="token_classification",
        seed=15,
        config=dict(
            _BASE,
            id2label={str(i): label for i, label in enumerate(
                ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "MISC"])},
            label2id={label: i for i, label in enumerate(
                ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "MISC"])},
            architectures=["DistilBertForTokenClassification"],
        ),
    ),
    "qa": dict(head="question_answering", seed=16, config=dict(_BASE, architectures=["DistilBertForQuestionAnswering"])),
    "base": dict(head=None, seed=17, config=dict(_BASE, architectures=["DistilBertModel"])),
}


def build_model_dir(name, directory, vocab=VOCAB):
    """Write the checkpoint `name` of SPECS into `directory` and return it."""
    import shutil

    from minidistil.checkpoints.saving import save_checkpoint
    from minidistil.modeling.config import DistilBertConfig
    from minidistil.modeling.initialization import random_params

    spec = SPECS[name]
    directory = Path(directory)
    config = DistilBertConfig.from_dict(spec["config"])
    params = random_params(config, seed=spec["seed"], head=spec["head"], std=STD, perturb=True)
    save_checkpoint(directory, config, params, prefix_encoder=spec["head"] is not None)
    shutil.copyfile(vocab, directory / "vocab.txt")
    (directory / "tokenizer_config.json").write_text(
        '{"do_lower_case": true, "model_max_length": 512, "tokenizer_class": "DistilBertTokenizer"}\n'
    )
    return directory
