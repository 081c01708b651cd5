"""What every task pipeline shares: loading, input checks, batched forward passes."""

from __future__ import annotations

import numpy as np

from ..errors import MinidistilError


class PipelineInputError(MinidistilError, ValueError):
    """An input or a pipeline argument is invalid; the message says which and why."""


def check_text(text, what="text"):
    if not isinstance(text, str):
        raise PipelineInputError(f"{what} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise PipelineInputError(f"{what} is empty")
    return text


def check_top_k(top_k, allow_none=False):
    if top_k is None and allow_none:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise PipelineInputError(f"top_k must be a positive integer, got {top_k!r}")
    if top_k <= 0:
        raise PipelineInputError(f"top_k must be a positive integer, got {top_k}")
    return int(top_k)


def check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise PipelineInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


class Pipeline:
    """A model and its tokenizer, with the task's pre- and post-processing.

    Subclasses set `model_class` (the heads class they run) and implement `__call__`.
    Items are tokenised one by one, then run through the model `batch_size` at a
    time (right-padded, attention mask 0 on the padding).
    """

    task = None
    model_class = None
    token_outputs = ()  # output fields with a sequence axis, cut back to each item's length

    def __init__(self, model, tokenizer, batch_size=1, **defaults):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = check_batch_size(batch_size)
        self.defaults = defaults

    @property
    def config(self):
        return self.model.config

    def _options(self, kwargs):
        return {**self.defaults, **kwargs}

    def check_length(self, n_tokens, what="input", remedy="truncation=True"):
        """remedy: the pipeline option that cuts long inputs (the CLI's --truncation sets it)."""
        limit = self.config.max_position_embeddings
        if n_tokens > limit:
            raise PipelineInputError(
                f"{what} is {n_tokens} tokens long, more than the model's {limit} positions; "
                f"pass {remedy} (on the command line: --truncation) to cut it to {limit}"
            )

    def forward(self, features, batch_size=None, keep_padding=False):
        """Run the model on a list of {"input_ids": [...]} features, `batch_size` at a time.

        Returns one model output per feature, each a dict of arrays with a leading batch axis of 1
        (like the reference's unbatched outputs), cut back to the feature's own length unless
        keep_padding (the reference returns feature-extraction rows at the batch's padded length).
        """
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        pad_id = self.tokenizer.pad_token_id or 0
        results = []
        for start in range(0, len(features), batch_size):
            chunk = features[start : start + batch_size]
            lengths = [len(f["input_ids"]) for f in chunk]
            width = max(lengths)
            ids = np.full((len(chunk), width), pad_id, dtype=np.int64)  # (B, S)
            mask = np.zeros((len(chunk), width), dtype=np.int64)  # (B, S)
            for row, f in enumerate(chunk):
                ids[row, : lengths[row]] = f["input_ids"]
                mask[row, : lengths[row]] = 1
            output = self.model(input_ids=ids, attention_mask=mask, return_numpy=True)
            arrays = {k: v for k, v in output.items() if isinstance(v, np.ndarray)}
            for row, length in enumerate(lengths):
                item = {}
                for key, value in arrays.items():
                    value = value[row : row + 1]  # (1, ...)
                    item[key] = value[:, :length] if key in self.token_outputs and not keep_padding else value
                results.append(item)
        return results
