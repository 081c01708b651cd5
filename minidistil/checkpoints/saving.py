"""Writing checkpoints that the reference loads, and `convert` (any supported layout in, DistilBERT safetensors out).

    save_checkpoint("out/", config, params, prefix_encoder=True)
    convert("minilm/", "minilm-distil/")
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import CheckpointError
from ..modeling.config import DistilBertConfig
from .loading import SAFE_WEIGHTS_NAME, load_checkpoint
from .safetensors_io import write_safetensors
from .schema import CLASS_OF_HEAD, HEAD_OF_CLASS, check_tensors, drop_tied_copy, expected_shapes, saved_name

# Files copied by `convert` when present: tokenizer and sentence-transformers metadata.
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "added_tokens.json")
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "README.md")
_MODULE_DIR = re.compile(r"^\d+_[A-Za-z]\w*$")  # 1_Pooling, 2_Normalize, 2_Dense ...


def save_checkpoint(
    directory: str | os.PathLike,
    config: DistilBertConfig,
    state: Mapping[str, np.ndarray],
    prefix_encoder: bool = False,
) -> Path:
    """Write config.json + model.safetensors that the reference's from_pretrained loads.

    `state` uses bare names (names already carrying "distilbert." are written as they are).
    prefix_encoder=True writes the encoder under "distilbert." as the reference's task classes do
    (use it for any model with a head); False writes bare names as DistilBertModel does. A tied
    projector is not written (schema's tie rule), as the reference does.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = drop_tied_copy(dict(state), config, directory)
    out = {saved_name(name, prefix_encoder): np.asarray(value) for name, value in state.items()}
    config.save_pretrained(directory)
    write_safetensors(directory / SAFE_WEIGHTS_NAME, out, metadata={"format": "pt"})
    return directory


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> tuple[DistilBertConfig, Path]:
    """Load any supported checkpoint (BERT or DistilBERT, any layout) and write it as DistilBERT safetensors.

    The tensors are checked against the encoder plus the head they hold (MLM, token
    classification, question answering, sequence classification or multiple choice, recognised by
    name and config.architectures). Tokenizer files and sentence-transformers files (modules.json,
    1_Pooling/, ...) are copied when present, so the result is a drop-in replacement.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"{dst}: convert needs a destination other than its source")
    config, state = load_checkpoint(src)
    head = _detect_head(config, state)
    params = check_tensors(state, expected_shapes(config, head), source=src)
    if config.architectures is None:
        config = config.replace(architectures=[CLASS_OF_HEAD[head]])
    save_checkpoint(dst, config, params, prefix_encoder=head is not None)
    for name in TOKENIZER_FILES + SENTENCE_TRANSFORMERS_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for child in sorted(src.iterdir()) if src.is_dir() else ():
        if child.is_dir() and _MODULE_DIR.match(child.name):
            shutil.copytree(child, dst / child.name, dirs_exist_ok=True)
    return config, dst


def _detect_head(config: DistilBertConfig, state: Mapping[str, np.ndarray]) -> str | None:
    for arch in config.architectures or ():
        if arch in HEAD_OF_CLASS:
            return HEAD_OF_CLASS[arch]
    if "vocab_projector.bias" in state:
        return "masked_lm"
    if "qa_outputs.weight" in state:
        return "question_answering"
    if "pre_classifier.weight" in state:
        w = state.get("classifier.weight")
        return "multiple_choice" if w is not None and w.shape[0] == 1 and config.num_labels != 1 else "sequence_classification"
    if "classifier.weight" in state:
        return "token_classification"
    return None
