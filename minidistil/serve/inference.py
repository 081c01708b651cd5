"""What each route computes, as pipeline calls; run in a request thread, never on the event loop.

Every function takes the `Engine` and checked request values (schemas.py) and returns plain
results for routes.py to format. Model work goes through the pipelines, so that a response is
what `minidistil.pipeline(task, model)` returns in-process for the same input.
"""

from __future__ import annotations

import numpy as np

from ..sentence import cosine_similarity, normalize as l2_normalize, pool
from .errors import too_large


def count_tokens(pipe, item):
    """Tokens the pipeline's tokenizer makes of a text or (text, text_pair), special tokens included."""
    text, pair = (item, None) if isinstance(item, str) else item
    config = getattr(pipe, "sentence_config", None)
    if config is not None and config.do_lower_case:  # as SentenceEmbeddingPipeline sees the text
        text = text.lower()
    return len(pipe.tokenizer(text, pair)["input_ids"])


def check_lengths(pipe, items, limit):
    """413 for the first input longer than `limit` tokens (when the request does not truncate)."""
    for n, item in enumerate(items):
        length = len(item) if isinstance(item, list) else count_tokens(pipe, item)
        if length > limit:
            raise too_large(f"`inputs[{n}]` is {length} tokens long, more than the {limit} this model takes: "
                            "send truncate=true (or start the server with --auto-truncate)", "inputs")


def embed_ids(pipe, id_lists, side, limit):
    """Sentence embeddings (n, dim) of token-id lists, used as given (as TEI does: no special tokens
    added), cut to `limit` on `side`: the pipeline's own forward pass and pooling, unnormalised."""
    features = [{"input_ids": ids[-limit:] if side == "left" else ids[:limit]} for ids in id_lists]
    pooling = pipe.sentence_config.pooling
    return np.concatenate([pool(out["last_hidden_state"], np.ones(out["last_hidden_state"].shape[:2]), pooling)
                           for out in pipe.forward(features)])


def embed(engine, inputs, normalize, truncate, side):
    """(n, dim) float32 sentence embeddings of texts and token-id lists, in input order."""
    pipe = engine.pipelines[side]
    if not truncate:
        check_lengths(pipe, inputs, engine.max_input_length)
    texts = [n for n, item in enumerate(inputs) if isinstance(item, str)]
    ids = [n for n, item in enumerate(inputs) if not isinstance(item, str)]
    vectors = np.empty((len(inputs), engine.model.config.dim * len(pipe.sentence_config.pooling)), dtype=np.float32)
    if texts:
        vectors[texts] = pipe([inputs[n] for n in texts], normalize=normalize)
    if ids:
        pooled = embed_ids(pipe, [inputs[n] for n in ids], side, engine.max_input_length)
        vectors[ids] = l2_normalize(pooled) if normalize else pooled
    return vectors


def similarity(engine, source, sentences, truncate, side):
    """Cosine similarity of `source` to each sentence (TEI: unnormalised embeddings, then cosine)."""
    vectors = embed(engine, [source, *sentences], False, truncate, side)
    return cosine_similarity(vectors[:1], vectors[1:])[0]


def predict(engine, inputs, truncate, raw_scores, side):
    """Every label with its score, best first, for each text or (text, text_pair)."""
    pipe = engine.pipelines[side]
    options = {"top_k": None}
    if raw_scores:
        options["function_to_apply"] = "none"
    if truncate:
        options.update(truncation=True, max_length=engine.max_input_length)
    else:
        check_lengths(pipe, inputs, engine.max_input_length)
    items = [x if isinstance(x, str) else {"text": x[0], "text_pair": x[1]} for x in inputs]
    return pipe(items, **options)


def run_task(engine, request):
    """`POST /` for fill-mask, text-, token-classification, question-answering, feature-extraction.

    The pipeline's result for the inputs and parameters, except that text-classification answers as
    the Inference API does: one list of {label, score} per input, also for a single text.
    """
    parameters = dict(request.parameters)
    if engine.task == "feature-extraction" and parameters.pop("truncate", False):
        parameters["truncation"] = True
    result = engine.pipeline(request.inputs, **parameters)
    if engine.task == "text-classification":
        return [r if isinstance(r, list) else [r] for r in (result if request.batch else [result])]
    return result


def tokenize(engine, texts, add_special_tokens):
    """TEI's tokens: id, text (the token for special ones), special, start and stop (characters)."""
    tokenizer = engine.tokenizer
    results = []
    for text in texts:
        encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True,
                             return_special_tokens_mask=True)
        ids = list(encoding["input_ids"])
        tokens = tokenizer.convert_ids_to_tokens(ids)
        results.append([
            {"id": int(i), "text": token, "special": True, "start": None, "stop": None} if special
            else {"id": int(i), "text": text[start:stop], "special": False, "start": int(start), "stop": int(stop)}
            for i, token, special, (start, stop) in zip(ids, tokens, encoding["special_tokens_mask"],
                                                      encoding["offset_mapping"])
        ])
    return results


def decode(engine, id_lists, skip_special_tokens):
    return [engine.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens) for ids in id_lists]
