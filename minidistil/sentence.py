"""Sentence embeddings as sentence-transformers computes them, from its files in a model directory.

A sentence-transformers model directory lists its modules in `modules.json`:
a Transformer (settings in `sentence_bert_config.json`: max_seq_length,
do_lower_case), a Pooling (settings in e.g. `1_Pooling/config.json`) and
optionally a Normalize. `read_sentence_config` turns those files into a
`SentenceConfig`; `pool` and `normalize` are the two steps after the encoder.
A plain model directory without modules.json gets sentence-transformers'
fallback: mean pooling, no normalisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# Legacy boolean keys of 1_Pooling/config.json -> mode, in sentence-transformers' order.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class SentenceConfig:
    pooling: tuple = ("mean",)
    normalize: bool = False
    max_seq_length: int | None = None  # None: the tokenizer's / model's limit
    do_lower_case: bool = False


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def pooling_modes(config):
    """The pooling modes named by a Pooling config (new `pooling_mode` key or the legacy booleans)."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key, False)) or ("mean",)
    for mode in modes:
        if mode not in POOLING_MODES:
            raise ConfigError(f"pooling_mode {mode!r} is not one of {', '.join(POOLING_MODES)}")
    return modes


def read_sentence_config(model_dir):
    """SentenceConfig from a model directory's sentence-transformers files (defaults when absent)."""
    model_dir = Path(model_dir)
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return SentenceConfig()
    pooling, normalize, max_seq_length, do_lower_case = ("mean",), False, None, False
    for module in _read_json(modules_file):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        sub = model_dir / module.get("path", "")
        if kind == "Transformer":
            settings = sub / "sentence_bert_config.json"
            if settings.is_file():
                data = _read_json(settings)
                max_seq_length = data.get("max_seq_length")
                do_lower_case = bool(data.get("do_lower_case", False))
        elif kind == "Pooling":
            pooling = pooling_modes(_read_json(sub / "config.json")) if (sub / "config.json").is_file() else ("mean",)
        elif kind == "Normalize":
            normalize = True
        else:
            raise ConfigError(
                f"{modules_file}: module {module.get('type')!r} is not supported (only {', '.join(_KNOWN_MODULES)})"
            )
    return SentenceConfig(pooling, normalize, max_seq_length, do_lower_case)


def pool(token_embeddings, attention_mask, modes=("mean",)):
    """(B, S, D) token embeddings and (B, S) mask -> (B, len(modes)·D) float32, right-padded inputs."""
    x = np.asarray(token_embeddings, dtype=np.float32)  # (B, S, D)
    mask = np.asarray(attention_mask).astype(np.float32)  # (B, S)
    m = mask[:, :, None]  # (B, S, 1)
    out = []
    for mode in modes:
        if mode == "cls":
            first = np.argmax(mask > 0, axis=1)  # (B,)
            out.append(x[np.arange(x.shape[0]), first])
        elif mode == "max":
            out.append(np.where(m > 0, x, -np.inf).max(axis=1).astype(np.float32))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (x * m).sum(axis=1, dtype=np.float32)  # (B, D)
            count = np.maximum(m.sum(axis=1, dtype=np.float32), np.float32(1e-9))  # (B, 1)
            out.append(total / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "weightedmean":
            first = np.argmax(mask > 0, axis=1)[:, None, None].astype(np.float32)  # (B, 1, 1)
            weights = np.arange(1, x.shape[1] + 1, dtype=np.float32)[None, :, None] - first  # (B, S, 1)
            w = m * weights
            out.append((x * w).sum(axis=1) / np.maximum(w.sum(axis=1), np.float32(1e-9)))
        elif mode == "lasttoken":
            last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1] > 0, axis=1)  # (B,)
            out.append((x * m)[np.arange(x.shape[0]), last])
        else:
            raise ConfigError(f"pooling mode {mode!r} is not one of {', '.join(POOLING_MODES)}")
    return np.concatenate(out, axis=-1).astype(np.float32, copy=False)


def normalize(x, eps=1e-12):
    """Rows divided by their L2 norm (at least eps), as torch.nn.functional.normalize."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt((x * x).sum(axis=-1, keepdims=True, dtype=np.float32))
    return x / np.maximum(norms, np.float32(eps))


def cosine_similarity(a, b):
    """(n, d) x (m, d) -> (n, m) cosine similarities."""
    return normalize(a) @ normalize(b).T
