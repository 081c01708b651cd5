"""question-answering: the span of a context that answers a question, over overlapping windows."""

from __future__ import annotations

import numpy as np

from .base import Pipeline, PipelineInputError, check_text, check_top_k

MASKED_LOGIT = -10000.0  # what the reference writes over tokens that cannot be part of an answer


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PipelineInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def best_spans(start, end, allowed, top_k, max_answer_len):
    """The top_k (start, end, p_start·p_end) spans of one window with start <= end < start + max_answer_len.

    start, end: (S,) probabilities; allowed: (S,) 1 where a token may be part of an answer.
    Spans touching a token that is not allowed are dropped after the top_k are chosen, as in the reference.
    """
    outer = np.outer(start, end)  # (S, S): p(start=i) p(end=j)
    candidates = np.tril(np.triu(outer), max_answer_len - 1)  # j >= i and j - i < max_answer_len
    flat = candidates.ravel()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) < top_k:
        order = np.argsort(-flat)
    else:
        chosen = np.argpartition(-flat, top_k)[:top_k]
        order = chosen[np.argsort(-flat[chosen])]
    starts, ends = np.unravel_index(order, candidates.shape)
    ok = np.isin(starts, allowed.nonzero()) & np.isin(ends, allowed.nonzero())
    starts, ends = starts[ok], ends[ok]
    return starts, ends, candidates[starts, ends]


def window_probabilities(start_logits, end_logits, p_mask, attention_mask):
    """Softmaxed start and end over the tokens that may answer (float32), and that allowed-mask."""
    allowed = (1 - np.asarray(p_mask, dtype=np.int64)) & np.asarray(attention_mask, dtype=np.int64)  # (S,)
    blocked = allowed == 0
    start = np.where(blocked, np.float32(MASKED_LOGIT), np.asarray(start_logits, dtype=np.float32))
    end = np.where(blocked, np.float32(MASKED_LOGIT), np.asarray(end_logits, dtype=np.float32))
    start = np.exp(start - start.max())
    start = start / start.sum()
    end = np.exp(end - end.max())
    end = end / end.sum()
    return start, end, allowed


class QuestionAnsweringPipeline(Pipeline):
    task = "question-answering"
    model_class = "DistilBertForQuestionAnswering"
    token_outputs = ("start_logits", "end_logits")
    OPTIONS = (
        "top_k",
        "doc_stride",
        "max_answer_len",
        "max_seq_len",
        "max_question_len",
        "handle_impossible_answer",
        "align_to_words",
    )

    def __init__(self, model, tokenizer, batch_size=1, **defaults):
        super().__init__(model, tokenizer, batch_size, **defaults)
        self._settings(defaults)

    def _settings(self, opts):
        unknown = set(opts) - set(self.OPTIONS)
        if unknown:
            raise PipelineInputError(f"question-answering got unknown option(s): {', '.join(sorted(unknown))}")
        model_max = min(self.tokenizer.model_max_length, self.config.max_position_embeddings)
        max_seq_len = opts.get("max_seq_len")
        max_seq_len = min(model_max, 384) if max_seq_len is None else _positive_int(max_seq_len, "max_seq_len")
        if max_seq_len > self.config.max_position_embeddings:
            raise PipelineInputError(
                f"max_seq_len ({max_seq_len}) is more than the model's {self.config.max_position_embeddings} positions"
            )
        doc_stride = opts.get("doc_stride")
        doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else int(doc_stride)
        if isinstance(opts.get("doc_stride"), bool) or doc_stride < 0:
            raise PipelineInputError(f"doc_stride must be a non-negative integer, got {opts.get('doc_stride')!r}")
        if doc_stride > max_seq_len:
            raise PipelineInputError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
        return {
            "top_k": check_top_k(opts.get("top_k", 1)),
            "max_answer_len": _positive_int(opts.get("max_answer_len", 15), "max_answer_len"),
            "max_question_len": _positive_int(opts.get("max_question_len", 64), "max_question_len"),
            "max_seq_len": max_seq_len,
            "doc_stride": doc_stride,
            "handle_impossible_answer": bool(opts.get("handle_impossible_answer", False)),
            "align_to_words": bool(opts.get("align_to_words", True)),
        }

    def __call__(self, *args, question=None, context=None, batch_size=None, **kwargs):
        """Answer `question` from `context`.

        Inputs: question=..., context=... (strings, or a list of questions with one context or a
        list of each), or a {"question", "context"} dict or a list of dicts as the first argument.
        Options: top_k (1), doc_stride (128), max_answer_len (15), max_seq_len (384),
        max_question_len (64), handle_impossible_answer (False), align_to_words (True).
        One question gives {score, start, end, answer} (a list of them when top_k > 1 finds
        several); several questions give a list of those.
        """
        settings = self._settings(self._options(kwargs))
        examples = self._examples(args, question, context)
        windows, owners = [], []
        for n, (q, c) in enumerate(examples):
            for window in self.preprocess(q, c, settings):
                windows.append(window)
                owners.append(n)
        outputs = self.forward(windows, batch_size)
        per_example = [[] for _ in examples]
        for owner, window, out in zip(owners, windows, outputs):
            per_example[owner].append((window, out["start_logits"][0], out["end_logits"][0]))
        results = [self.postprocess(examples[n][1], chunks, settings) for n, chunks in enumerate(per_example)]
        return results[0] if len(results) == 1 else results

    @staticmethod
    def _examples(args, question, context):
        if args:
            if question is not None or context is not None:
                raise PipelineInputError("give question/context either as keywords or as dicts, not both")
            if len(args) == 2 and all(isinstance(a, str) for a in args):
                items = [{"question": args[0], "context": args[1]}]
            elif len(args) == 1:
                items = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
            else:
                items = list(args)
        elif question is None or context is None:
            raise PipelineInputError("question-answering needs both a question and a context")
        elif isinstance(question, str) and isinstance(context, str):
            items = [{"question": question, "context": context}]
        elif isinstance(question, (list, tuple)) and isinstance(context, str):
            items = [{"question": q, "context": context} for q in question]
        elif isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
            if len(question) != len(context):
                raise PipelineInputError(f"{len(question)} questions for {len(context)} contexts")
            items = [{"question": q, "context": c} for q, c in zip(question, context)]
        else:
            raise PipelineInputError("question and context must be strings or lists of strings")
        if not items:
            raise PipelineInputError("question-answering needs at least one question")
        examples = []
        for item in items:
            if not isinstance(item, dict) or "question" not in item or "context" not in item:
                raise PipelineInputError(f'each input must be a {{"question": ..., "context": ...}} dict, got {item!r}')
            examples.append((check_text(item["question"], "question"), check_text(item["context"], "context")))
        return examples

    def preprocess(self, question, context, settings):
        """The windows of [CLS] question [SEP] context-part [SEP], doc_stride tokens of overlap."""
        n_question = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        if n_question > settings["max_question_len"]:
            raise PipelineInputError(
                f"the question is {n_question} tokens long, more than max_question_len={settings['max_question_len']}"
            )
        room = settings["max_seq_len"] - n_question - 3  # context tokens per window
        if room <= settings["doc_stride"] and len(self.tokenizer(question, context)["input_ids"]) > settings["max_seq_len"]:
            raise PipelineInputError(
                f"a {n_question}-token question leaves {max(room, 0)} context tokens per window of "
                f"max_seq_len={settings['max_seq_len']}, not more than doc_stride={settings['doc_stride']}"
            )
        encoding = self.tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=settings["max_seq_len"],
            stride=settings["doc_stride"],
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        cls_id = self.tokenizer.cls_token_id
        windows = []
        for i in range(len(encoding["input_ids"])):
            ids = list(encoding["input_ids"][i])
            sequence_ids = encoding.sequence_ids(i)
            # Only context tokens (and [CLS], the "no answer" slot) may be part of an answer.
            p_mask = [0 if (s == 1 or t == cls_id) else 1 for s, t in zip(sequence_ids, ids)]
            windows.append(
                {
                    "input_ids": ids,
                    "attention_mask": list(encoding["attention_mask"][i]),
                    "p_mask": p_mask,
                    "offsets": [tuple(o) for o in encoding["offset_mapping"][i]],
                    "sequence_ids": sequence_ids,
                    "word_ids": encoding.word_ids(i),
                }
            )
        return windows

    @staticmethod
    def char_span(window, s, e, align_to_words):
        """Character span in the context of tokens s..e (widened to whole words when align_to_words)."""
        offsets = window["offsets"]
        if align_to_words:
            word_ids, sequence_ids = window["word_ids"], window["sequence_ids"]
            start_word, end_word = word_ids[s], word_ids[e]
            if start_word is not None and end_word is not None:
                in_context = [i for i, sid in enumerate(sequence_ids) if sid == 1]
                first = [i for i in in_context if word_ids[i] == start_word]
                last = [i for i in in_context if word_ids[i] == end_word]
                if first and last:
                    return offsets[first[0]][0], offsets[last[-1]][1]
        return offsets[s][0], offsets[e][1]

    def postprocess(self, context, chunks, settings):
        top_k = settings["top_k"]
        # Words are re-aligned after choosing, which can merge candidates: look at more of them.
        pre_top_k = top_k * 2 + 10 if settings["align_to_words"] else top_k
        min_null_score = 1000000.0
        answers = []
        for window, start_logits, end_logits in chunks:
            start, end, allowed = window_probabilities(
                start_logits, end_logits, window["p_mask"], window["attention_mask"]
            )
            if settings["handle_impossible_answer"]:
                min_null_score = min(min_null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            starts, ends, scores = best_spans(start, end, allowed, pre_top_k, settings["max_answer_len"])
            for s, e, score in zip(starts, ends, scores):
                begin, finish = self.char_span(window, int(s), int(e), settings["align_to_words"])
                text = context[begin:finish]
                same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
                if same is not None:  # the same answer from another span or window: scores add up
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": int(begin), "end": int(finish), "answer": text})
        if settings["handle_impossible_answer"]:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers
