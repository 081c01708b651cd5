"""fill-mask: the most likely tokens at each [MASK] of a text."""

from __future__ import annotations

import warnings

import numpy as np

from .base import Pipeline, PipelineInputError, check_text, check_top_k


def softmax(x):
    """Softmax over the last axis, float32 as the reference computes it."""
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_indices(values, k):
    """Indices of the k largest values, largest first (ties: lower index first)."""
    k = min(k, values.shape[-1])
    if k < values.shape[-1]:
        candidates = np.argpartition(-values, k - 1)[:k]
    else:
        candidates = np.arange(values.shape[-1])
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order]


class FillMaskPipeline(Pipeline):
    task = "fill-mask"
    model_class = "DistilBertForMaskedLM"
    token_outputs = ("logits",)

    def __init__(self, model, tokenizer, batch_size=1, **defaults):
        super().__init__(model, tokenizer, batch_size, **defaults)
        if "top_k" in defaults:
            check_top_k(defaults["top_k"])
        if defaults.get("targets") is not None:
            self.target_ids(defaults["targets"])

    def __call__(self, inputs, batch_size=None, **kwargs):
        """Top-k fillers of every [MASK] in `inputs` (a text or a list of texts).

        Options: top_k (5), targets (a token or list of tokens to score instead of the whole
        vocabulary), tokenizer_kwargs. A text with one mask gives a list of dicts
        {score, token, token_str, sequence}; a text with several masks gives one such list per
        mask. A list of texts gives a list of those (a one-element list gives the bare result,
        as the reference does).
        """
        opts = self._options(kwargs)
        unknown = set(opts) - {"top_k", "targets", "tokenizer_kwargs"}
        if unknown:
            raise PipelineInputError(f"fill-mask got unknown option(s): {', '.join(sorted(unknown))}")
        top_k = check_top_k(opts.get("top_k", 5))
        target_ids = None if opts.get("targets") is None else self.target_ids(opts["targets"])
        if target_ids is not None:
            top_k = min(top_k, len(target_ids))
        if isinstance(inputs, str):
            texts = [inputs]
        elif isinstance(inputs, (list, tuple)):
            texts = list(inputs)
        else:  # not list(inputs): that would split bytes into ints and a dict into its keys
            raise PipelineInputError(f"fill-mask inputs must be a text or a list of texts, got {type(inputs).__name__}")
        if not texts:
            raise PipelineInputError("fill-mask needs at least one text")
        mask_id = self.tokenizer.mask_token_id
        features = []
        for text in texts:
            check_text(text)
            encoding = self.tokenizer(text, **(opts.get("tokenizer_kwargs") or {}))
            ids = list(encoding["input_ids"])
            if mask_id not in ids:
                raise PipelineInputError(f"no {self.tokenizer.mask_token} token in the input: {text!r}")
            self.check_length(len(ids), remedy='tokenizer_kwargs={"truncation": True}')
            features.append({"input_ids": ids})
        outputs = self.forward(features, batch_size)
        results = [
            self.postprocess(np.asarray(f["input_ids"]), out["logits"][0], top_k, target_ids)
            for f, out in zip(features, outputs)
        ]
        if isinstance(inputs, str) or len(results) == 1:
            return results[0]
        return results

    def postprocess(self, input_ids, logits, top_k, target_ids=None):
        """input_ids (S,), logits (S, V) -> the reference's result for one text."""
        masked = np.nonzero(input_ids == self.tokenizer.mask_token_id)[0]  # (M,)
        probs = softmax(logits[masked])  # (M, V)
        if target_ids is not None:
            probs = probs[:, target_ids]  # (M, T)
        single_mask = len(masked) == 1
        pad_id = self.tokenizer.pad_token_id
        result = []
        for i, row in enumerate(probs):
            proposals = []
            for j in top_indices(row, top_k):
                token = int(target_ids[j]) if target_ids is not None else int(j)
                tokens = input_ids.copy()
                tokens[masked[i]] = token
                tokens = tokens[tokens != pad_id]
                proposals.append(
                    {
                        "score": float(row[j]),
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        # With several masks the other [MASK]s stay visible, as in the reference.
                        "sequence": self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single_mask),
                    }
                )
            result.append(proposals)
        return result[0] if single_mask else result

    def target_ids(self, targets):
        """Vocabulary ids of `targets`; a target outside the vocabulary is replaced by its first piece."""
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise PipelineInputError(f"targets must be a string or a list of strings, got {targets!r}")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(target, add_special_tokens=False, truncation=True, max_length=1)["input_ids"]
                if not pieces:
                    warnings.warn(f"target {target!r} is not in the vocabulary and has no token: ignored", stacklevel=3)
                    continue
                token_id = pieces[0]
                warnings.warn(
                    f"target {target!r} is not in the vocabulary: using "
                    f"{self.tokenizer.convert_ids_to_tokens(token_id)!r} instead",
                    stacklevel=3,
                )
            ids.append(int(token_id))
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise PipelineInputError("targets gave no token of the vocabulary")
        return np.array(ids)
