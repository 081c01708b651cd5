"""feature-extraction (the last hidden state) and sentence-embedding (pooled as sentence-transformers does)."""

from __future__ import annotations

import numpy as np

from .. import sentence
from .base import Pipeline, PipelineInputError, check_text


def _texts(inputs, task):
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, (list, tuple)) or not texts:
        raise PipelineInputError(f"{task} needs a text or a non-empty list of texts")
    return [check_text(t) for t in texts]


class FeatureExtractionPipeline(Pipeline):
    task = "feature-extraction"
    model_class = "DistilBertModel"
    token_outputs = ("last_hidden_state",)

    def __call__(self, inputs, batch_size=None, return_tensors=None, truncation=None, tokenize_kwargs=None):
        """The last hidden state of each text: nested lists [1][seq][dim], or (1, seq, dim) arrays.

        With batch_size > 1 every row keeps its batch's padded length, as in the reference.
        """
        return_tensors = self.defaults.get("return_tensors", False) if return_tensors is None else return_tensors
        options = dict(self.defaults.get("tokenize_kwargs") or {}, **(tokenize_kwargs or {}))
        if truncation is not None:
            options["truncation"] = truncation
        features = []
        for text in _texts(inputs, self.task):
            encoding = self.tokenizer(text, **options)
            ids = list(encoding["input_ids"])
            self.check_length(len(ids))
            features.append({"input_ids": ids})
        outputs = self.forward(features, batch_size, keep_padding=True)
        results = [out["last_hidden_state"] if return_tensors else out["last_hidden_state"].tolist() for out in outputs]
        return results[0] if isinstance(inputs, str) else results


class SentenceEmbeddingPipeline(Pipeline):
    """Embeddings equal to sentence-transformers' `encode` for the same model directory."""

    task = "sentence-embedding"
    model_class = "DistilBertModel"
    token_outputs = ("last_hidden_state",)

    def __init__(self, model, tokenizer, batch_size=32, sentence_config=None, **defaults):
        super().__init__(model, tokenizer, batch_size, **defaults)
        self.sentence_config = sentence_config or sentence.SentenceConfig()
        limits = [self.config.max_position_embeddings, self.sentence_config.max_seq_length]
        if not self.sentence_config.max_seq_length:
            limits.append(tokenizer.model_max_length)
        self.max_seq_length = min(int(n) for n in limits if n)

    def __call__(self, inputs, batch_size=None, normalize=None):
        """(n, dim) float32 for a list of texts, (dim,) for one text.

        Truncates at max_seq_length, pools as the model's Pooling config says, and L2-normalises when
        its modules include Normalize (normalize=True/False overrides that).
        """
        texts = _texts(inputs, self.task)
        if self.sentence_config.do_lower_case:
            texts = [t.lower() for t in texts]
        features = []
        for text in texts:
            encoding = self.tokenizer(text, truncation=True, max_length=self.max_seq_length)
            features.append({"input_ids": list(encoding["input_ids"])})
        # Longest first, as sentence-transformers batches, so that little padding is computed.
        order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        outputs = self.forward([features[i] for i in order], batch_size)
        embeddings = np.empty((len(texts), self.config.dim * len(self.sentence_config.pooling)), dtype=np.float32)
        for i, out in zip(order, outputs):
            hidden = out["last_hidden_state"]  # (1, S, D), the item's own tokens
            embeddings[i] = sentence.pool(hidden, np.ones(hidden.shape[:2]), self.sentence_config.pooling)[0]
        if self.sentence_config.normalize if normalize is None else normalize:
            embeddings = sentence.normalize(embeddings)
        return embeddings[0] if isinstance(inputs, str) else embeddings
