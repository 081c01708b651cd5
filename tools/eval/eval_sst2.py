"""GLUE SST-2 dev accuracy of a sentiment checkpoint.

    python tools/eval/eval_sst2.py --model distilbert/distilbert-base-uncased-finetuned-sst-2-english

Published (model card): accuracy 0.9105504587155964, i.e. 794 of 872 correct, 460 predicted
positive, 413 true positives (label 1 = POSITIVE).
"""

import argparse
import csv
import sys
import time

from eval_common import SHARED_DATA, add_model_arguments, load_pipeline, report

DEFAULT_MODEL = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
PUBLISHED = {
    "distilbert-base-uncased-finetuned-sst-2-english": {
        "correct": 794, "n": 872, "predicted_positive": 460, "true_positive": 413, "accuracy": 0.9105504587155964,
    }
}


def read_tsv(path):
    """(sentence, label) rows of a GLUE TSV with the header `sentence<TAB>label`."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or not {"sentence", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a header 'sentence<TAB>label'")
    return [(row["sentence"], int(row["label"])) for row in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, DEFAULT_MODEL)
    parser.add_argument("--data", default=str(SHARED_DATA / "sst2" / "dev.tsv"))
    args = parser.parse_args(argv)

    from minidistil.cli import run_batched
    from minidistil.metrics import binary_classification_report

    examples = read_tsv(args.data)[: args.limit]
    classify = load_pipeline("text-classification", args)
    label2id = {label: int(i) for i, label in classify.config.id2label.items()}

    def run(chunk):
        return classify([sentence for sentence, _ in chunk], truncation=True)

    start = time.perf_counter()
    predicted = [label2id[out["label"]] for _, out in run_batched(run, examples, args.batch_size, "sst2")]
    seconds = time.perf_counter() - start
    result = binary_classification_report(predicted, [label for _, label in examples])
    name = str(args.model).rstrip("/").split("/")[-1]
    result.update(model=str(args.model), seconds=round(seconds, 1), published=PUBLISHED.get(name))
    lines = [
        f"{result['model']}: {result['correct']}/{result['n']} correct, accuracy {result['accuracy']:.4f}, "
        f"precision {result['precision']:.4f}, recall {result['recall']:.4f} "
        f"({result['predicted_positive']} predicted positive, {result['true_positive']} true positives; {seconds:.0f} s)"
    ]
    if result["published"]:
        p = result["published"]
        lines.append(f"published: {p['correct']}/{p['n']} correct, {p['predicted_positive']} predicted positive, "
                     f"{p['true_positive']} true positives")
    report(args, result, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
