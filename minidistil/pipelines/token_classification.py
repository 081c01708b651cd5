"""token-classification (alias ner): a label for every token, or entities grouped from them."""

from __future__ import annotations

import numpy as np

from .base import Pipeline, PipelineInputError, check_text
from .fill_mask import softmax

AGGREGATION_STRATEGIES = ("none", "simple", "first", "average", "max")


def check_aggregation(strategy):
    if strategy is None:
        return "none"
    if not isinstance(strategy, str) or strategy.lower() not in AGGREGATION_STRATEGIES:
        raise PipelineInputError(
            f"aggregation_strategy must be one of {', '.join(AGGREGATION_STRATEGIES)}, got {strategy!r}"
        )
    return strategy.lower()


def split_tag(label):
    """("B" | "I", entity type): B-X and I-X as written, anything else counts as a continuation."""
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def check_ignore_labels(ignore):
    """The labels to leave out, as a list: ["O"] for None, [label] for one label given as a string."""
    if ignore is None:
        return ["O"]
    if isinstance(ignore, str):
        return [ignore]  # not list(ignore), which would ignore the string's characters
    if not isinstance(ignore, (list, tuple, set, frozenset)) or not all(isinstance(x, str) for x in ignore):
        raise PipelineInputError(f"ignore_labels must be a label or a list of labels (strings), got {ignore!r}")
    return list(ignore)


class TokenClassificationPipeline(Pipeline):
    task = "token-classification"
    model_class = "DistilBertForTokenClassification"
    token_outputs = ("logits",)

    def __init__(self, model, tokenizer, batch_size=1, **defaults):
        super().__init__(model, tokenizer, batch_size, **defaults)
        self._check(defaults)

    def _check(self, opts):
        unknown = set(opts) - {"aggregation_strategy", "ignore_labels", "stride"}
        if unknown:
            raise PipelineInputError(f"token-classification got unknown option(s): {', '.join(sorted(unknown))}")
        strategy = check_aggregation(opts.get("aggregation_strategy"))
        ignore = check_ignore_labels(opts.get("ignore_labels"))
        stride = opts.get("stride")
        if stride is not None:
            if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
                raise PipelineInputError(f"stride must be a non-negative integer, got {stride!r}")
            if stride >= self.max_length:
                raise PipelineInputError(f"stride ({stride}) must be less than the model's length ({self.max_length})")
            if strategy == "none":
                raise PipelineInputError('stride needs an aggregation_strategy other than "none"')
        return strategy, ignore, stride

    @property
    def max_length(self):
        return min(self.tokenizer.model_max_length, self.config.max_position_embeddings)

    def __call__(self, inputs, batch_size=None, **kwargs):
        """Entities of a text (list of dicts) or of each text of a list (list of lists).

        Options: aggregation_strategy (none / simple / first / average / max), ignore_labels
        (["O"]), stride (split texts longer than the model into overlapping windows).
        Without aggregation each dict is {entity, score, index, word, start, end}; with it,
        {entity_group, score, word, start, end}.
        """
        strategy, ignore, stride = self._check(self._options(kwargs))
        if isinstance(inputs, str):
            texts = [inputs]
        elif isinstance(inputs, (list, tuple)) and inputs:
            texts = list(inputs)
        else:
            raise PipelineInputError("token-classification needs a text or a non-empty list of texts")
        windows, owners = [], []
        for n, text in enumerate(texts):
            for window in self.preprocess(check_text(text), stride):
                windows.append(window)
                owners.append(n)
        outputs = self.forward(windows, batch_size)
        per_text = [[] for _ in texts]
        for owner, window, out in zip(owners, windows, outputs):
            per_text[owner].append((window, out["logits"][0]))
        results = [self.postprocess(texts[n], chunks, strategy, ignore) for n, chunks in enumerate(per_text)]
        return results[0] if isinstance(inputs, str) else results

    def preprocess(self, text, stride=None):
        """One feature per window of `text` (a single one without stride): ids, offsets, special-token mask."""
        options = dict(
            truncation=True,
            max_length=self.max_length,
            return_special_tokens_mask=True,
            return_offsets_mapping=True,
        )
        if stride is not None:
            options.update(return_overflowing_tokens=True, stride=stride)
        encoding = self.tokenizer(text, **options)
        ids = encoding["input_ids"]
        if stride is None:
            keys = ("input_ids", "offset_mapping", "special_tokens_mask")
            return [{k: list(encoding[k]) for k in keys}]
        return [
            {
                "input_ids": list(ids[i]),
                "offset_mapping": list(encoding["offset_mapping"][i]),
                "special_tokens_mask": list(encoding["special_tokens_mask"][i]),
            }
            for i in range(len(ids))
        ]

    def postprocess(self, text, chunks, strategy, ignore):
        entities = []
        for window, logits in chunks:
            scores = softmax(logits)  # (S, num_labels)
            tokens = self.gather(text, window, scores)
            entities.extend(
                e
                for e in self.aggregate(tokens, strategy)
                if e.get("entity") not in ignore and e.get("entity_group") not in ignore
            )
        if len(chunks) > 1:
            entities = self.merge_overlapping(entities)
        for e in entities:
            e["score"] = float(e["score"])
        return entities

    def gather(self, text, window, scores):
        """One record per non-special token: its word, scores, character span and whether it continues a word."""
        tokens = []
        unk_id = self.tokenizer.unk_token_id
        for idx, (token_id, special) in enumerate(zip(window["input_ids"], window["special_tokens_mask"])):
            if special:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(token_id))
            start, end = (int(x) for x in window["offset_mapping"][idx])
            original = text[start:end]
            # A WordPiece continuation differs in length from its text (the "##" prefix).
            is_subword = len(word) != len(original)
            if int(token_id) == unk_id:
                word, is_subword = original, False
            tokens.append(
                {"word": word, "scores": scores[idx], "start": start, "end": end, "index": idx, "is_subword": is_subword}
            )
        return tokens

    def _label(self, i):
        return self.config.id2label[int(i)]

    def aggregate(self, tokens, strategy):
        if strategy in ("none", "simple"):
            entities = []
            for t in tokens:
                best = int(t["scores"].argmax())
                entities.append(
                    {
                        "entity": self._label(best),
                        "score": t["scores"][best],
                        "index": t["index"],
                        "word": t["word"],
                        "start": t["start"],
                        "end": t["end"],
                    }
                )
            if strategy == "none":
                return entities
        else:
            entities = self.aggregate_words(tokens, strategy)
        return self.group_entities(entities)

    def aggregate_words(self, tokens, strategy):
        """Give each word (a token and its continuations) one label, chosen by `strategy`."""
        words, group = [], []
        for t in tokens:
            if group and not t["is_subword"]:
                words.append(self.aggregate_word(group, strategy))
                group = []
            group.append(t)
        if group:
            words.append(self.aggregate_word(group, strategy))
        return words

    def aggregate_word(self, group, strategy):
        if strategy == "first":
            scores = group[0]["scores"]
        elif strategy == "max":
            scores = max(group, key=lambda t: t["scores"].max())["scores"]
        else:  # average
            scores = np.nanmean(np.stack([t["scores"] for t in group]), axis=0)
        best = int(scores.argmax())
        return {
            "entity": self._label(best),
            "score": scores[best],
            "word": self.tokenizer.convert_tokens_to_string([t["word"] for t in group]),
            "start": group[0]["start"],
            "end": group[-1]["end"],
        }

    def group_entities(self, entities):
        """Join neighbours of the same type into entity groups (a B- tag starts a new group)."""
        groups, current = [], []
        for e in entities:
            if current:
                bi, tag = split_tag(e["entity"])
                _, last_tag = split_tag(current[-1]["entity"])
                if not (tag == last_tag and bi != "B"):
                    groups.append(self.group(current))
                    current = []
            current.append(e)
        if current:
            groups.append(self.group(current))
        return groups

    def group(self, entities):
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": np.mean(np.nanmean([e["score"] for e in entities])),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    @staticmethod
    def merge_overlapping(entities):
        """Across windows: of entities that overlap, keep the longest (then the higher score)."""
        if not entities:
            return entities
        entities = sorted(entities, key=lambda e: e["start"])
        kept, previous = [], entities[0]
        for e in entities:
            if previous["start"] <= e["start"] < previous["end"]:
                longer = e["end"] - e["start"] > previous["end"] - previous["start"]
                same = e["end"] - e["start"] == previous["end"] - previous["start"]
                if longer or (same and e["score"] > previous["score"]):
                    previous = e
            else:
                kept.append(previous)
                previous = e
        kept.append(previous)
        return kept
