"""Which pipeline task a model directory is for, read from its files.

sentence-transformers files (modules.json) -> sentence-embedding; otherwise the head named in
config.json's `architectures` (...ForSequenceClassification -> text-classification, ...); a bare
encoder -> feature-extraction. `--task` overrides it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ServeSettingsError

HEAD_TASKS = {
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
    "ForMaskedLM": "fill-mask",
}


def detect_task(model_dir):
    model_dir = Path(model_dir)
    if (model_dir / "modules.json").is_file():
        return "sentence-embedding"
    config_file = model_dir / "config.json"
    try:
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError) as exc:
        raise ServeSettingsError(f"cannot read the architectures of {config_file}: {exc}; pass --task") from None
    for architecture in architectures:
        for suffix, task in HEAD_TASKS.items():
            if str(architecture).endswith(suffix):
                return task
    return "feature-extraction"
