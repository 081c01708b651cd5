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

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, shown
from .hub.errors import UnsafeName
from .hub.names import check_inside, check_repo_path
from .jsonfiles import read_json, read_json_object

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


def pooling_modes(config):
    """The pooling modes named by a Pooling config (new `pooling_mode` key or the legacy booleans)."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode) if isinstance(mode, list) else (mode,)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key, False)) or ("mean",)
    for mode in modes:
        if not isinstance(mode, str) or mode not in POOLING_MODES:
            raise ConfigError(f"pooling_mode {shown(mode)} is not one of {', '.join(POOLING_MODES)}")
    return modes


def read_sentence_config(model_dir):
    """SentenceConfig from a model directory's sentence-transformers files (defaults when absent)."""
    model_dir = Path(model_dir)
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return SentenceConfig()
    pooling, normalize, max_seq_length, do_lower_case = ("mean",), False, None, False
    modules = read_json(modules_file, ConfigError)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConfigError(f"{modules_file}: must be a list of module objects")
    for i, module in enumerate(modules):
        kind = module.get("type", "")
        if not isinstance(kind, str):
            raise ConfigError(f"{modules_file}: module {i} 'type' must be a string, got {shown(kind)}")
        kind = kind.rsplit(".", 1)[-1]
        sub = _module_folder(model_dir, module.get("path", ""), f"{modules_file}: module {i} 'path'")
        if kind == "Transformer":
            settings = sub / "sentence_bert_config.json"
            if settings.is_file():
                data = read_json_object(settings, ConfigError)
                max_seq_length = data.get("max_seq_length")
                if max_seq_length is not None and (not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool)
                                                   or max_seq_length < 1):
                    raise ConfigError(f"{settings}: max_seq_length must be a positive integer, got {shown(max_seq_length)}")
                do_lower_case = bool(data.get("do_lower_case", False))
        elif kind == "Pooling":
            config = sub / "config.json"
            pooling = pooling_modes(read_json_object(config, ConfigError)) if config.is_file() else ("mean",)
        elif kind == "Normalize":
            normalize = True
        else:
            raise ConfigError(
                f"{modules_file}: module {shown(module.get('type'))} is not supported (only {', '.join(_KNOWN_MODULES)})"
            )
    return SentenceConfig(pooling, normalize, max_seq_length, do_lower_case)


def _module_folder(model_dir, path, field):
    """A module's folder: `path` relative to the model directory ("" for the directory itself), which
    it may not leave, neither by its name (absolute, "..") nor through a symlinked folder."""
    if path == "":
        return model_dir
    try:
        check_repo_path(path, field)
        folder = model_dir / path
        check_inside(model_dir, folder, field)
    except UnsafeName as exc:
        raise ConfigError(f"{exc}: a module's files must be inside the model directory") from None
    return folder


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
