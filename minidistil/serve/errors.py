"""What the server answers when it cannot answer: status codes and error bodies.

A `RequestError` carries the HTTP status, TEI's `error_type` and a message naming the field or
limit at fault. TEI's body is `{"error": message, "error_type": type}`; the `/v1/*` routes answer
in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, which the `openai` client
reads. TEI's codes: 400 empty batch, 413 past a size limit, 422 invalid input or tokenizer
error, 424 inference failed, 429 overloaded, 503 unhealthy; and 401 without the API key.
"""

from __future__ import annotations

import json

from ..errors import MinidistilError

class ServeError(MinidistilError):
    """Base class of the errors of `minidistil serve`."""


class ServeSettingsError(ServeError, ValueError):
    """A server option is invalid; the message names it."""


class RequestCancelled(ServeError):
    """The client went away before its request was answered; its rows were not computed."""


class ServerClosing(ServeError):
    """The model worker has stopped (shutdown, or a failure that is logged)."""


class RequestError(ServeError):
    """A request that gets an error answer: HTTP status, TEI error_type, message."""

    def __init__(self, status, error_type, message, param=None):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.param = param  # the field at fault, when there is one (OpenAI's `param`)

    def tei_body(self):
        return {"error": self.message, "error_type": self.error_type}

    def openai_body(self):
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.status}}

    def body(self, openai=False):
        return json.dumps(self.openai_body() if openai else self.tei_body()).encode()


def invalid(message, param=None):
    """422: the body parses but a field has the wrong type or value."""
    return RequestError(422, "validation", message, param)


def empty(message, param=None):
    """400: a batch with nothing in it."""
    return RequestError(400, "empty", message, param)


def too_large(message, param=None):
    """413: past the payload, batch-size or input-length limit."""
    return RequestError(413, "validation", message, param)


def wrong_model(route, needed, task):
    """424 (TEI's answer when a route does not fit the model): e.g. /predict on an embedding model."""
    return RequestError(424, "backend", f"{route} is for {needed} models; this server runs a {task} model")
