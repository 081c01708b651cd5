"""The routes: TEI's, OpenAI's embeddings, and the Inference API's `POST /`.

Each handler checks its body (schemas.py), runs its computation in a request thread
(inference.py) and formats the answer in the route's shape. `ROUTES` lists them for app.py.
"""

from __future__ import annotations

import base64

import numpy as np
from starlette.responses import Response

from . import inference, schemas
from .errors import RequestError, wrong_model

EMBEDDING = "sentence-embedding"
CLASSIFIER = "text-classification"


def require(exchange, task, route):
    if exchange.engine.task != task:
        raise wrong_model(route, task, exchange.engine.task)


async def health(exchange):
    if not exchange.engine.healthy():
        raise RequestError(503, "unhealthy", "unhealthy")
    return Response(b"", status_code=200)


async def info(exchange):
    return exchange.reply(exchange.engine.info(), timed=False)


async def metrics(exchange):
    metrics = exchange.engine.metrics
    return Response(metrics.render(), media_type=metrics.content_type)


async def embed(exchange):
    """POST /embed -> [[float]], one embedding per input (also for a single input)."""
    require(exchange, EMBEDDING, "/embed")
    request = schemas.embed_request(await exchange.json(), exchange.limits)
    return await _embed(exchange, request)


async def _embed(exchange, request):
    exchange.count(request.inputs, request.single)
    vectors = await exchange.run(inference.embed, request.inputs, request.normalize, request.truncate, request.side)
    return exchange.reply(vectors)


async def predict(exchange):
    """POST /predict -> [{score, label}] for one input, [[{score, label}]] for a batch; best first."""
    require(exchange, CLASSIFIER, "/predict")
    request = schemas.predict_request(await exchange.json(), exchange.limits)
    exchange.count(request.inputs, request.single)
    results = await exchange.run(inference.predict, request.inputs, request.truncate, request.raw_scores,
                                 request.side)
    return exchange.reply(results[0] if request.single else results)


async def tokenize(exchange):
    """POST /tokenize -> [[{id, text, special, start, stop}]], one list per input."""
    request = schemas.tokenize_request(await exchange.json(), exchange.limits)
    exchange.count(request.texts, request.single)
    return exchange.reply(await exchange.run(inference.tokenize, request.texts, request.add_special_tokens))


async def decode(exchange):
    """POST /decode -> [text], one per list of ids."""
    request = schemas.decode_request(await exchange.json(), exchange.limits, len(exchange.engine.tokenizer.get_vocab()))
    return exchange.reply(await exchange.run(inference.decode, request.ids, request.skip_special_tokens))


def openai_embedding(vector, as_base64):
    """OpenAI's embedding value: floats, or base64 of the little-endian float32 bytes."""
    if as_base64:
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.tolist()


async def openai_embeddings(exchange):
    """POST /v1/embeddings: OpenAI's request and response (normalised embeddings, as TEI)."""
    require(exchange, EMBEDDING, "/v1/embeddings")
    engine = exchange.engine
    dimensions = engine.model.config.dim * len(engine.pipeline.sentence_config.pooling)
    request = schemas.openai_embeddings_request(await exchange.json(), exchange.limits, dimensions)
    exchange.count(request.inputs, len(request.inputs) == 1)
    vectors = await exchange.run(inference.embed, request.inputs, True, exchange.limits.auto_truncate, "right")
    tokens = exchange.ticket.tokens
    return exchange.reply({
        "object": "list",
        "data": [{"object": "embedding", "embedding": openai_embedding(v, request.base64), "index": n}
                 for n, v in enumerate(vectors)],
        "model": request.model or engine.model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


async def inference_api(exchange):
    """POST /: the Hugging Face Inference API payload for the served task."""
    body = await exchange.json()
    task = exchange.engine.task
    if task != EMBEDDING:
        request = schemas.task_request(body, task, exchange.limits)
        items = request.inputs if request.batch else [request.inputs]
        exchange.count([i for i in items if isinstance(i, str)], not request.batch)
        return exchange.reply(await exchange.run(inference.run_task, request))
    request = schemas.embedding_task_request(body, exchange.limits)
    if isinstance(request, schemas.EmbedRequest):
        return await _embed(exchange, request)
    exchange.count([request.source, *request.sentences], False)
    scores = await exchange.run(inference.similarity, request.source, request.sentences, request.truncate,
                                request.side)
    return exchange.reply(scores)


PUBLIC = {"protected": False, "counted": False}
ROUTES = [
    ("GET", "/health", health, PUBLIC),
    ("GET", "/", health, PUBLIC),  # the Inference API's health check
    ("GET", "/metrics", metrics, PUBLIC),
    ("GET", "/info", info, {"counted": False}),
    ("POST", "/embed", embed, {}),
    ("POST", "/predict", predict, {}),
    ("POST", "/tokenize", tokenize, {}),
    ("POST", "/decode", decode, {}),
    ("POST", "/v1/embeddings", openai_embeddings, {"openai": True}),
    ("POST", "/", inference_api, {}),
]
