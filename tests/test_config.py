"""DistilBertConfig: reference defaults and key names, JSON round trip, validation errors."""

import json
from pathlib import Path

import pytest

from minidistil import ConfigError
from minidistil.modeling.config import LAYER_NORM_EPS, DistilBertConfig

FIXTURES = Path(__file__).parent / "golden" / "checkpoint"

# What the reference's DistilBertConfig() holds (transformers 4.57 / 5.x defaults).
REFERENCE_DEFAULTS = {
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "sinusoidal_pos_embds": False,
    "n_layers": 6,
    "n_heads": 12,
    "dim": 768,
    "hidden_dim": 3072,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation": "gelu",
    "initializer_range": 0.02,
    "qa_dropout": 0.1,
    "seq_classif_dropout": 0.2,
    "pad_token_id": 0,
    "bos_token_id": None,
    "eos_token_id": None,
    "tie_word_embeddings": True,
    "num_labels": 2,
    "id2label": {0: "LABEL_0", 1: "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "problem_type": None,
}


def test_defaults_match_the_reference():
    config = DistilBertConfig()
    for name, value in REFERENCE_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.model_type == "distilbert"
    assert config.head_dim == 64
    assert config.layer_norm_eps == LAYER_NORM_EPS == 1e-12
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (768, 12, 6)


def test_json_uses_reference_key_names():
    data = DistilBertConfig().to_dict()
    # The keys the reference writes for a default config (its to_json_string), plus the labels.
    for key in ("activation", "attention_dropout", "dim", "dropout", "hidden_dim", "initializer_range",
                "max_position_embeddings", "model_type", "n_heads", "n_layers", "pad_token_id", "qa_dropout",
                "seq_classif_dropout", "sinusoidal_pos_embds", "vocab_size", "tie_word_embeddings"):
        assert key in data, key
    assert data["model_type"] == "distilbert"
    assert data["id2label"] == {"0": "LABEL_0", "1": "LABEL_1"}  # string keys in JSON, as the reference writes
    assert "num_labels" not in data and "extra" not in data


def test_round_trip_through_a_file(tmp_path):
    config = DistilBertConfig(dim=96, n_heads=3, hidden_dim=200, n_layers=3, activation="gelu_new",
                              sinusoidal_pos_embds=True, id2label={0: "NEG", 1: "NEU", 2: "POS"},
                              problem_type="single_label_classification", architectures=["DistilBertForSequenceClassification"])
    path = config.save_pretrained(tmp_path)
    raw = json.loads(path.read_text())
    assert raw["id2label"] == {"0": "NEG", "1": "NEU", "2": "POS"}
    loaded = DistilBertConfig.from_pretrained(tmp_path)
    assert loaded == config
    assert loaded.id2label == {0: "NEG", 1: "NEU", 2: "POS"}  # int keys again in Python
    assert loaded.label2id == {"NEG": 0, "NEU": 1, "POS": 2}
    assert loaded.num_labels == 3


def test_unknown_keys_are_kept_and_written_back(tmp_path):
    data = {**DistilBertConfig().to_dict(), "return_dict": True, "transformers_version": "4.57.6",
            "output_past": {"nested": [1, 2]}, "_name_or_path": "x"}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = DistilBertConfig.from_pretrained(tmp_path)
    assert config.extra == {"return_dict": True, "transformers_version": "4.57.6", "output_past": {"nested": [1, 2]},
                            "_name_or_path": "x"}
    out = config.to_dict()
    for key in ("return_dict", "transformers_version", "output_past", "_name_or_path"):
        assert out[key] == data[key]


def test_reference_written_config_loads():
    config = DistilBertConfig.from_pretrained(FIXTURES / "tiny_mlm_safetensors")
    assert (config.dim, config.n_heads, config.n_layers, config.hidden_dim, config.vocab_size) == (8, 2, 2, 12, 32)
    assert config.architectures == ["DistilBertForMaskedLM"]
    assert config.extra["dtype"] == "float32"


def test_aliases_are_accepted():
    config = DistilBertConfig.from_dict({"hidden_size": 96, "num_attention_heads": 3, "num_hidden_layers": 2})
    assert (config.dim, config.n_heads, config.n_layers) == (96, 3, 2)
    with pytest.raises(ConfigError, match="hidden_size 96 .*disagrees with dim 64"):
        DistilBertConfig.from_dict({"hidden_size": 96, "dim": 64, "n_heads": 2})


def test_num_labels_follows_id2label():
    assert DistilBertConfig(num_labels=5).id2label == {i: f"LABEL_{i}" for i in range(5)}
    config = DistilBertConfig.from_dict({"id2label": {"0": "a", "1": "b", "2": "c"}})
    assert config.num_labels == 3 and config.label2id == {"a": 0, "b": 1, "c": 2}
    config.num_labels = 4  # as the reference's setter: regenerate
    assert config.id2label == {i: f"LABEL_{i}" for i in range(4)} and config.label2id["LABEL_3"] == 3
    assert DistilBertConfig().replace(num_labels=3).num_labels == 3
    assert DistilBertConfig.from_dict({"_num_labels": 3}).num_labels == 3  # old transformers key
    assert DistilBertConfig.from_dict({"label2id": {"x": 1, "y": 0}}).id2label == {0: "y", 1: "x"}


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_dim_not_divisible_by_heads():
    with pytest.raises(ConfigError) as info:
        DistilBertConfig(dim=100, n_heads=12)
    assert "dim 100 is not divisible by n_heads 12" in str(info.value)


@pytest.mark.parametrize("field", ["vocab_size", "max_position_embeddings", "n_layers", "n_heads", "dim", "hidden_dim"])
@pytest.mark.parametrize("value", [0, -4])
def test_non_positive_sizes(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be positive, got {value}"):
        DistilBertConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("dim", 7.5), ("n_layers", True), ("vocab_size", "30522")])
def test_sizes_must_be_integers(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be an integer"):
        DistilBertConfig(**{field: value})


def test_unknown_activation():
    with pytest.raises(ConfigError, match="activation 'tanh' is not supported"):
        DistilBertConfig(activation="tanh")
    for name in ("gelu", "relu", "gelu_new", "silu", "swish"):
        assert DistilBertConfig(activation=name).activation == name


@pytest.mark.parametrize("field", ["dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout"])
def test_dropouts_are_probabilities(field):
    with pytest.raises(ConfigError, match=f"^{field} must be a probability"):
        DistilBertConfig(**{field: 1.5})


def test_num_labels_mismatch():
    with pytest.raises(ConfigError, match="num_labels 3 does not match id2label, which has 2 labels"):
        DistilBertConfig(num_labels=3, id2label={0: "a", 1: "b"})
    with pytest.raises(ConfigError, match="num_labels must be a positive integer"):
        DistilBertConfig(num_labels=0)


def test_bad_id2label():
    with pytest.raises(ConfigError, match="id2label key 'x' is not an integer"):
        DistilBertConfig(id2label={"x": "a"})
    with pytest.raises(ConfigError, match=r"id2label keys must be 0..1, got \[0, 2\]"):
        DistilBertConfig(id2label={0: "a", 2: "b"})


def test_bad_problem_type():
    with pytest.raises(ConfigError, match="problem_type 'multi_class' is not supported"):
        DistilBertConfig(problem_type="multi_class")
    with pytest.raises(ConfigError, match="single_label_classification' needs num_labels > 1"):
        DistilBertConfig(problem_type="single_label_classification", num_labels=1)
    for name in ("regression", "single_label_classification", "multi_label_classification"):
        assert DistilBertConfig(problem_type=name).problem_type == name


def test_pad_token_must_be_in_vocab():
    with pytest.raises(ConfigError, match=r"pad_token_id must be a token id in \[0, vocab_size=10\)"):
        DistilBertConfig(vocab_size=10, pad_token_id=10)
    assert DistilBertConfig(pad_token_id=None).pad_token_id is None


def test_bert_model_type_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match="model_type 'bert' is not 'distilbert'.*convert"):
        DistilBertConfig.from_dict({"model_type": "bert"})


def test_file_errors_name_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        DistilBertConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"dim": 100}))
    with pytest.raises(ConfigError, match="config.json: dim 100 is not divisible by n_heads 12"):
        DistilBertConfig.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="cannot read config"):
        DistilBertConfig.from_pretrained(tmp_path / "nowhere")
