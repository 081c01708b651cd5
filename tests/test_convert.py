"""BERT -> DistilBERT: config mapping, tensor renames, exactness against the reference BERT, convert()."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from minidistil.kernels import reference as ref
from minidistil import CheckpointError, ConfigError
from minidistil.checkpoints.bert import bert_config_to_distilbert, convert_bert_state
from minidistil.checkpoints.schema import check_tensors, expected_shapes
from minidistil.checkpoints.saving import convert
from minidistil.checkpoints.loading import load_checkpoint
from minidistil.checkpoints.safetensors_io import read_header

FIXTURES = Path(__file__).parent / "golden" / "checkpoint"

BERT_CONFIG = {
    "model_type": "bert", "architectures": ["BertModel"], "hidden_size": 8, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 12, "hidden_act": "gelu", "max_position_embeddings": 16,
    "vocab_size": 32, "pad_token_id": 0, "layer_norm_eps": 1e-12, "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "position_embedding_type": "absolute",
    "use_cache": True, "transformers_version": "4.8.2",
}


def bert_state(config=BERT_CONFIG, seed=0, prefix=""):
    """A random BERT state dict with the reference's names."""
    rng = np.random.default_rng(seed)
    d, h, v, p = config["hidden_size"], config["intermediate_size"], config["vocab_size"], config["max_position_embeddings"]

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    s = {
        "embeddings.word_embeddings.weight": r(v, d),
        "embeddings.position_embeddings.weight": r(p, d),
        "embeddings.token_type_embeddings.weight": r(2, d),
        "embeddings.LayerNorm.weight": r(d),
        "embeddings.LayerNorm.bias": r(d),
        "embeddings.position_ids": np.arange(p)[None],
        "pooler.dense.weight": r(d, d),
        "pooler.dense.bias": r(d),
    }
    for i in range(config["num_hidden_layers"]):
        e = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            s[e + name + ".weight"], s[e + name + ".bias"] = r(d, d), r(d)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            s[e + name + ".weight"], s[e + name + ".bias"] = r(d), r(d)
        s[e + "intermediate.dense.weight"], s[e + "intermediate.dense.bias"] = r(h, d), r(h)
        s[e + "output.dense.weight"], s[e + "output.dense.bias"] = r(d, h), r(d)
    return {prefix + k: v for k, v in s.items()}


def test_config_mapping():
    config = bert_config_to_distilbert(BERT_CONFIG)
    assert (config.dim, config.n_layers, config.n_heads, config.hidden_dim) == (8, 2, 2, 12)
    assert (config.activation, config.vocab_size, config.max_position_embeddings, config.pad_token_id) == ("gelu", 32, 16, 0)
    assert config.architectures == ["DistilBertModel"]
    assert config.extra == {"transformers_version": "4.8.2"}  # BERT-only settings are consumed, not carried


def test_layer_norm_eps_must_be_distilberts():
    with pytest.raises(ConfigError, match="layer_norm_eps 1e-05 cannot be converted: DistilBERT's LayerNorm epsilon is fixed at 1e-12"):
        bert_config_to_distilbert({**BERT_CONFIG, "layer_norm_eps": 1e-5})


@pytest.mark.parametrize("change,message", [
    ({"position_embedding_type": "relative_key"}, "absolute positions only"),
    ({"is_decoder": True}, "only encoder-only BERT"),
    ({"hidden_act": "tanh"}, "hidden_act 'tanh' has no DistilBERT equivalent"),
    ({"hidden_size": 10, "num_attention_heads": 4}, "dim 10 is not divisible by n_heads 4"),
])
def test_unconvertible_configs(change, message):
    with pytest.raises(ConfigError, match=message):
        bert_config_to_distilbert({**BERT_CONFIG, **change})


def test_pooler_classification_heads_are_refused():
    with pytest.raises(CheckpointError, match="BertForSequenceClassification cannot be converted exactly.*pooler"):
        bert_config_to_distilbert({**BERT_CONFIG, "architectures": ["BertForSequenceClassification"]})


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_state_renames_and_folds_token_type(prefix):
    state = bert_state(prefix=prefix)
    config = bert_config_to_distilbert(BERT_CONFIG)
    out = convert_bert_state(state, config, source="tiny")
    params = check_tensors(out, expected_shapes(config), "tiny")  # exactly DistilBertModel's tensors
    assert len(params) == len(out)
    p = prefix
    assert out["transformer.layer.1.attention.q_lin.weight"] is state[p + "encoder.layer.1.attention.self.query.weight"]
    assert out["transformer.layer.0.attention.out_lin.bias"] is state[p + "encoder.layer.0.attention.output.dense.bias"]
    assert out["transformer.layer.0.sa_layer_norm.weight"] is state[p + "encoder.layer.0.attention.output.LayerNorm.weight"]
    assert out["transformer.layer.1.ffn.lin1.weight"] is state[p + "encoder.layer.1.intermediate.dense.weight"]
    assert out["transformer.layer.1.ffn.lin2.weight"] is state[p + "encoder.layer.1.output.dense.weight"]
    assert out["transformer.layer.1.output_layer_norm.bias"] is state[p + "encoder.layer.1.output.LayerNorm.bias"]
    folded = state[p + "embeddings.position_embeddings.weight"] + state[p + "embeddings.token_type_embeddings.weight"][0]
    assert np.array_equal(out["embeddings.position_embeddings.weight"], folded)
    assert out["embeddings.position_embeddings.weight"].dtype == np.float32


def test_old_gamma_beta_names():
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in bert_state().items()}
    config = bert_config_to_distilbert(BERT_CONFIG)
    check_tensors(convert_bert_state(state, config), expected_shapes(config), "old")


def test_leftover_tensors_are_listed():
    state = {**bert_state(), "encoder.layer.0.attention.self.rel_pos.weight": np.zeros((3, 8), np.float32),
             "adapter.down.weight": np.zeros((2, 8), np.float32)}
    with pytest.raises(CheckpointError) as info:
        convert_bert_state(state, bert_config_to_distilbert(BERT_CONFIG), source="ckpt")
    text = str(info.value)
    assert "ckpt: 2 BERT tensor(s) have no DistilBERT equivalent" in text
    assert "encoder.layer.0.attention.self.rel_pos.weight (3, 8)" in text and "adapter.down.weight (2, 8)" in text


def test_missing_bert_tensor_is_reported():
    state = bert_state()
    del state["encoder.layer.1.output.dense.bias"]
    config = bert_config_to_distilbert(BERT_CONFIG)
    with pytest.raises(CheckpointError, match=r"missing 1 tensor\(s\):\n    transformer.layer.1.ffn.lin2.bias \(8,\)"):
        check_tensors(convert_bert_state(state, config), expected_shapes(config), "ckpt")


# ------------------------------------------------------------------------------- exactness
def distilbert_forward(config, p, input_ids, attention_mask):
    """A minimal DistilBERT encoder in NumPy (the test's own, from kernels.reference ops)."""
    eps = 1e-12
    seq = input_ids.shape[1]
    x = p["embeddings.word_embeddings.weight"][input_ids] + p["embeddings.position_embeddings.weight"][:seq]
    x = ref.layernorm(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps)
    b, hd, nh = x.shape[0], config.head_dim, config.n_heads

    def heads(t):  # [B, S, dim] -> [B, H, S, D]
        return t.reshape(b, seq, nh, hd).transpose(0, 2, 1, 3)

    for i in range(config.n_layers):
        L = f"transformer.layer.{i}."
        q, k, v = (heads(ref.linear(x, p[L + f"attention.{n}.weight"], p[L + f"attention.{n}.bias"])) for n in ("q_lin", "k_lin", "v_lin"))
        probs = ref.attention_probs(q, k, attention_mask, 1.0 / np.sqrt(hd))
        ctx = ref.attention_context(probs, v).transpose(0, 2, 1, 3).reshape(b, seq, config.dim)
        attn = ref.linear(ctx, p[L + "attention.out_lin.weight"], p[L + "attention.out_lin.bias"])
        x = ref.layernorm(attn, p[L + "sa_layer_norm.weight"], p[L + "sa_layer_norm.bias"], eps, residual=x)
        ff = ref.linear(x, p[L + "ffn.lin1.weight"], p[L + "ffn.lin1.bias"], config.activation)
        ff = ref.linear(ff, p[L + "ffn.lin2.weight"], p[L + "ffn.lin2.bias"])
        x = ref.layernorm(ff, p[L + "output_layer_norm.weight"], p[L + "output_layer_norm.bias"], eps, residual=x)
    return x


def test_converted_bert_matches_the_reference_bert():
    golden = np.load(FIXTURES / "tiny_bert_outputs.npz")
    ids, mask = golden["input_ids"], golden["attention_mask"]
    config, state = load_checkpoint(FIXTURES / "tiny_bert")
    params = check_tensors(state, expected_shapes(config), "tiny_bert")
    hidden = distilbert_forward(config, params, ids, mask)
    assert np.abs(hidden - golden["bert_last_hidden_state"]).max() < 1e-5

    config, state = load_checkpoint(FIXTURES / "tiny_bert_mlm")
    assert config.architectures == ["DistilBertForMaskedLM"]
    params = check_tensors(state, expected_shapes(config, "masked_lm"), "tiny_bert_mlm")
    assert "vocab_projector.weight" not in params  # tied: the projection is the word embedding matrix
    x = distilbert_forward(config, params, ids, mask)
    x = ref.linear(x, params["vocab_transform.weight"], params["vocab_transform.bias"], config.activation)
    x = ref.layernorm(x, params["vocab_layer_norm.weight"], params["vocab_layer_norm.bias"], 1e-12)
    logits = ref.linear(x, params["embeddings.word_embeddings.weight"], params["vocab_projector.bias"])
    assert np.abs(logits - golden["bert_mlm_logits"]).max() < 1e-4


# ------------------------------------------------------------------------------- convert()
def test_convert_writes_a_distilbert_checkpoint(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "tiny_bert", src)
    (src / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (src / "tokenizer_config.json").write_text("{}")
    (src / "modules.json").write_text("[]")
    (src / "1_Pooling").mkdir()
    (src / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (src / "unrelated.txt").write_text("not copied")
    config, dst = convert(src, tmp_path / "dst")
    assert sorted(p.name for p in dst.iterdir()) == ["1_Pooling", "config.json", "model.safetensors", "modules.json",
                                                      "tokenizer_config.json", "vocab.txt"]
    assert (dst / "1_Pooling" / "config.json").read_text() == '{"pooling_mode_mean_tokens": true}'
    written = json.loads((dst / "config.json").read_text())
    assert written["model_type"] == "distilbert" and written["dim"] == 8 and written["architectures"] == ["DistilBertModel"]
    names = set(read_header(dst / "model.safetensors")[0])
    assert names == set(expected_shapes(config))  # bare DistilBertModel names; no pooler, no token types
    _, original = load_checkpoint(src)
    config2, state2 = load_checkpoint(dst)
    assert config2 == config
    assert all(np.array_equal(state2[k], original[k]) for k in original)


def test_convert_mlm_keeps_the_head_under_the_task_layout(tmp_path):
    config, dst = convert(FIXTURES / "tiny_bert_mlm", tmp_path / "out")
    names = set(read_header(dst / "model.safetensors")[0])
    assert "distilbert.embeddings.word_embeddings.weight" in names and "vocab_transform.weight" in names
    assert "vocab_projector.weight" not in names  # tied, as the reference saves it


def test_convert_refuses_its_source(tmp_path):
    convert(FIXTURES / "tiny_bert", tmp_path / "out")
    with pytest.raises(CheckpointError, match="destination other than its source"):
        convert(tmp_path / "out", tmp_path / "out")


# ------------------------------------------------------------------------------- real MiniLM
def test_real_minilm_loads_as_distilbert(minilm_dir):
    path = minilm_dir
    config, state = load_checkpoint(path)
    assert (config.dim, config.n_layers, config.n_heads, config.hidden_dim, config.vocab_size) == (384, 6, 12, 1536, 30522)
    assert config.activation == "gelu" and config.max_position_embeddings == 512
    params = check_tensors(state, expected_shapes(config), str(path))
    assert params["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert params["transformer.layer.5.ffn.lin2.weight"].shape == (384, 1536)
    assert not params["embeddings.word_embeddings.weight"].flags.owndata  # memory-mapped, not copied


def test_real_minilm_converts(tmp_path, minilm_dir):
    path = minilm_dir
    config, dst = convert(path, tmp_path / "minilm")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "modules.json",
                 "sentence_bert_config.json", "1_Pooling/config.json"):
        assert (dst / name).is_file(), name
    config2, state2 = load_checkpoint(dst)
    assert config2.dim == 384
    check_tensors(state2, expected_shapes(config2), str(dst))
