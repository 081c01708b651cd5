"""SQuAD v1.1 EM/F1 and the classification report on hand-made cases."""

import pytest

from minidistil.metrics import (
    binary_classification_report,
    exact_match_score,
    f1_score,
    normalize_answer,
    squad_v1_evaluate,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Cat!", "cat"),
        ("an apple  a day", "apple day"),
        ("theater", "theater"),  # articles only as whole words
        ("A", ""),
        ("the_the", "thethe"),  # punctuation goes before articles are looked for
        ("Émile\tZola.", "émile zola"),  # non-ASCII letters are kept, lowercased
        ("1,000 km", "1000 km"),
        ("“quoted”", "“quoted”"),  # only ASCII punctuation is removed
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1():
    assert exact_match_score("The Eiffel Tower", "eiffel tower.")
    assert not exact_match_score("Eiffel", "Eiffel Tower")
    assert f1_score("Eiffel", "Eiffel Tower") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert f1_score("cat cat dog", "cat dog") == pytest.approx(2 * (2 / 3) * 1.0 / (2 / 3 + 1.0))
    assert f1_score("the", "a") == 0.0  # both normalise to nothing: v1.1 scores 0
    assert f1_score("", "Paris") == 0.0


def _dataset():
    return [
        {
            "title": "t",
            "paragraphs": [
                {
                    "context": "Paris is the capital of France.",
                    "qas": [
                        {"id": "q1", "question": "Capital?", "answers": [{"text": "Paris"}, {"text": "Paris, France"}]},
                        {"id": "q2", "question": "Country?", "answers": [{"text": "France"}]},
                        {"id": "q3", "question": "What is?", "answers": [{"text": "the capital of France"}]},
                    ],
                }
            ],
        }
    ]


def test_squad_evaluate_takes_the_best_gold_and_counts_unanswered(capsys):
    # q1 matches its second gold exactly, q2 its only gold; q3 "capital" vs "capital of france": p=1, r=1/3.
    predictions = {"q1": "paris france", "q2": "France", "q3": "capital"}
    result = squad_v1_evaluate(_dataset(), predictions)
    assert result["exact_match"] == pytest.approx(100 * 2 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)

    result = squad_v1_evaluate(_dataset(), {"q2": "France"})
    assert result == {"exact_match": pytest.approx(100 / 3), "f1": pytest.approx(100 / 3)}
    assert "Unanswered question q1 will receive score 0." in capsys.readouterr().err


def test_squad_evaluate_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="no questions"):
        squad_v1_evaluate([], {})


def test_binary_report_matches_the_sst2_card_arithmetic():
    # The SST-2 card's numbers: 872 examples, 794 correct, 460 predicted positive, 413 true positives, 444 positives.
    gold = [1] * 444 + [0] * 428
    predicted = [1] * 413 + [0] * 31 + [1] * 47 + [0] * 381
    report = binary_classification_report(predicted, gold)
    assert report["correct"] == 794 and report["predicted_positive"] == 460 and report["true_positive"] == 413
    assert report["accuracy"] == pytest.approx(0.9105504587155964)
    assert report["precision"] == pytest.approx(0.8978260869565218)
    assert report["recall"] == pytest.approx(0.9301801801801802)
    with pytest.raises(ValueError):
        binary_classification_report([1], [1, 0])
