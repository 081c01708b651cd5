"""text-classification (alias sentiment-analysis): labels and scores for a text or a text pair."""

from __future__ import annotations

import numpy as np

from .base import Pipeline, PipelineInputError, check_text, check_top_k
from .fill_mask import softmax

FUNCTIONS = ("softmax", "sigmoid", "none")
_LEGACY = object()  # top_k not given: the reference's backward-compatible output shapes


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float32)))


def check_function(name):
    if name is None:
        return None
    if not isinstance(name, str) or name.lower() not in FUNCTIONS:
        raise PipelineInputError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}, got {name!r}")
    return name.lower()


class TextClassificationPipeline(Pipeline):
    task = "text-classification"
    model_class = "DistilBertForSequenceClassification"

    def __init__(self, model, tokenizer, batch_size=1, **defaults):
        super().__init__(model, tokenizer, batch_size, **defaults)
        if "top_k" in defaults:
            check_top_k(defaults["top_k"], allow_none=True)
        check_function(defaults.get("function_to_apply"))

    def default_function(self):
        """softmax / sigmoid / none, chosen from problem_type and num_labels as the reference does."""
        problem_type = getattr(self.config, "problem_type", None)
        num_labels = len(self.config.id2label)
        if problem_type == "regression":
            return "none"
        if problem_type == "multi_label_classification" or num_labels == 1:
            return "sigmoid"
        if problem_type == "single_label_classification" or num_labels > 1:
            return "softmax"
        return "none"

    def __call__(self, inputs, batch_size=None, **kwargs):
        """Classify a text, a {"text", "text_pair"} dict, or a list of those.

        Options: top_k (1; None = every label, sorted), function_to_apply (softmax / sigmoid /
        none; default from the config), and tokenizer options (truncation, max_length).
        Output shapes follow the reference: without top_k a text gives [{label, score}] and a
        list gives [{label, score}, ...]; with top_k each item gives a sorted list of dicts.
        """
        opts = self._options(kwargs)
        top_k = opts.pop("top_k", _LEGACY)
        legacy = top_k is _LEGACY
        if not legacy:
            top_k = check_top_k(top_k, allow_none=True)
        function = check_function(opts.pop("function_to_apply", None)) or self.default_function()
        tokenizer_kwargs = opts
        unknown = set(tokenizer_kwargs) - {"truncation", "max_length", "padding"}
        if unknown:
            raise PipelineInputError(f"text-classification got unknown option(s): {', '.join(sorted(unknown))}")

        items = inputs if isinstance(inputs, list) else [inputs]
        if not items:
            raise PipelineInputError("text-classification needs at least one text")
        features = [self.preprocess(item, tokenizer_kwargs) for item in items]
        outputs = self.forward(features, batch_size)
        results = [self.postprocess(out["logits"][0], function, None if legacy else top_k, legacy) for out in outputs]
        if not isinstance(inputs, list):
            results = results[0]
            return [results] if isinstance(inputs, str) and legacy else results
        return results

    def preprocess(self, item, tokenizer_kwargs):
        if isinstance(item, dict):
            if set(item) - {"text", "text_pair"} or "text" not in item:
                raise PipelineInputError('a text pair is a dict {"text": ..., "text_pair": ...}')
            text = check_text(item["text"])
            pair = item.get("text_pair")
            encoding = self.tokenizer(text, pair if pair is None else check_text(pair, "text_pair"), **tokenizer_kwargs)
        elif isinstance(item, str):
            encoding = self.tokenizer(check_text(item), **tokenizer_kwargs)
        else:
            raise PipelineInputError(
                'inputs must be texts or {"text": ..., "text_pair": ...} dicts, got ' + type(item).__name__
            )
        ids = list(encoding["input_ids"])
        self.check_length(len(ids))
        return {"input_ids": ids}

    def postprocess(self, logits, function, top_k, legacy):
        logits = np.asarray(logits, dtype=np.float32)  # (num_labels,)
        if function == "sigmoid":
            scores = sigmoid(logits)
        elif function == "softmax":
            scores = softmax(logits)
        else:
            scores = logits
        id2label = self.config.id2label
        if legacy:  # the best label alone, as a dict
            best = int(scores.argmax())
            return {"label": id2label[best], "score": float(scores[best])}
        ranked = [{"label": id2label[i], "score": float(s)} for i, s in enumerate(scores)]
        ranked.sort(key=lambda d: d["score"], reverse=True)
        return ranked if top_k is None else ranked[:top_k]
