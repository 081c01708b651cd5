"""Evaluation metrics: SQuAD v1.1 exact match and F1, classification accuracy.

SQuAD v1.1 as its official evaluation script defines it: an answer is
normalised by lowercasing, dropping ASCII punctuation, dropping the articles
a/an/the (as whole words) and collapsing whitespace; exact match compares the
normalised strings, F1 the bags of normalised tokens; each question takes the
best score over its gold answers, an unanswered question scores 0, and both
totals are percentages over every question of the dataset.
"""

from __future__ import annotations

import re
import string
import sys
from collections import Counter

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop articles, collapse whitespace (in that order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-level F1 of the normalised answers (0 when they share no token, empty answers included)."""
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(ground_truth).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def best_over_gold(metric, prediction: str, ground_truths) -> float:
    return max(metric(prediction, gold) for gold in ground_truths)


def squad_questions(dataset):
    """(id, question, context, [gold answer texts]) for every question of a SQuAD `data` list."""
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield qa["id"], qa["question"], paragraph["context"], [a["text"] for a in qa["answers"]]


def squad_v1_evaluate(dataset, predictions, warn=True):
    """{'exact_match', 'f1'} (percentages) of `predictions` {id: answer text} on a SQuAD v1.1 `data` list."""
    return squad_v1_scores(squad_questions(dataset), predictions, warn)


def squad_v1_scores(questions, predictions, warn=True):
    """The same over (id, question, context, gold answers) tuples, e.g. a part of the dataset."""
    exact = f1 = 0.0
    total = 0
    for qid, _question, _context, golds in questions:
        total += 1
        if qid not in predictions:
            if warn:
                print(f"Unanswered question {qid} will receive score 0.", file=sys.stderr)
            continue
        exact += best_over_gold(exact_match_score, predictions[qid], golds)
        f1 += best_over_gold(f1_score, predictions[qid], golds)
    if total == 0:
        raise ValueError("the dataset has no questions")
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def binary_classification_report(predicted, gold, positive=1):
    """Accuracy, precision, recall and the counts behind them, for labels in {0, 1}."""
    predicted, gold = list(predicted), list(gold)
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("no examples")
    correct = sum(p == g for p, g in zip(predicted, gold))
    predicted_positive = sum(p == positive for p in predicted)
    true_positive = sum(p == positive and g == positive for p, g in zip(predicted, gold))
    gold_positive = sum(g == positive for g in gold)
    return {
        "n": len(gold),
        "correct": correct,
        "accuracy": correct / len(gold),
        "predicted_positive": predicted_positive,
        "true_positive": true_positive,
        "precision": true_positive / predicted_positive if predicted_positive else 0.0,
        "recall": true_positive / gold_positive if gold_positive else 0.0,
    }
