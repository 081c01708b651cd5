"""Sentence-transformers configuration reading and the pooling modes, on hand-made cases."""

import json

import numpy as np
import pytest

from minidistil import ConfigError
from minidistil.sentence import SentenceConfig, cosine_similarity, normalize, pool, read_sentence_config

X = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # (batch 2, seq 3, dim 2)
MASK = np.array([[1, 1, 0], [1, 1, 1]])


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("mean", [[1, 2], [8, 9]]),  # the first row averages its 2 real tokens only
        ("cls", [[0, 1], [6, 7]]),
        ("max", [[2, 3], [10, 11]]),
        ("mean_sqrt_len_tokens", [[2 / np.sqrt(2), 4 / np.sqrt(2)], [24 / np.sqrt(3), 27 / np.sqrt(3)]]),
        ("weightedmean", [[(0 * 1 + 2 * 2) / 3, (1 * 1 + 3 * 2) / 3], [(6 + 16 + 30) / 6, (7 + 18 + 33) / 6]]),
        ("lasttoken", [[2, 3], [10, 11]]),
    ],
)
def test_pooling_modes(mode, expected):
    out = pool(X, MASK, (mode,))
    assert out.dtype == np.float32 and np.allclose(out, expected)


def test_several_modes_concatenate_and_normalize():
    out = pool(X, MASK, ("cls", "mean"))
    assert out.shape == (2, 4) and np.allclose(out[0], [0, 1, 1, 2])
    unit = normalize(out)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1)
    assert np.allclose(normalize(np.zeros((1, 3))), 0)  # no division by zero
    assert cosine_similarity(out, out).diagonal() == pytest.approx([1, 1])


def _write(directory, modules, pooling=None, bert=None):
    (directory / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (directory / "1_Pooling").mkdir()
        (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if bert is not None:
        (directory / "sentence_bert_config.json").write_text(json.dumps(bert))


TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}


def test_read_config_legacy_and_new_pooling_keys(tmp_path):
    assert read_sentence_config(tmp_path) == SentenceConfig()  # a plain model: mean pooling, no Normalize
    _write(tmp_path, [TRANSFORMER, POOLING, NORMALIZE],
           {"word_embedding_dimension": 4, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
           {"max_seq_length": 128, "do_lower_case": True})
    assert read_sentence_config(tmp_path) == SentenceConfig(("cls",), True, 128, True)
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": ["max", "mean"]}))
    assert read_sentence_config(tmp_path).pooling == ("max", "mean")
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "median"}))
    with pytest.raises(ConfigError, match="pooling_mode 'median'"):
        read_sentence_config(tmp_path)


def test_unsupported_module_is_refused(tmp_path):
    _write(tmp_path, [TRANSFORMER, POOLING, {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}],
           {"pooling_mode_mean_tokens": True})
    with pytest.raises(ConfigError, match="Dense.*not supported"):
        read_sentence_config(tmp_path)


def test_minilm_package_config(minilm_dir):
    assert read_sentence_config(minilm_dir) == SentenceConfig(("mean",), True, 256, False)
