"""The ASGI application: what every request goes through around its route (routes.py).

For each request, in order: the API key (401), a place among --max-concurrent-requests (429),
the body within --payload-limit (413), the route itself, whose pipeline call runs in a request
thread while the event loop watches for the client going away (its rows are then dropped);
then the answer with TEI's timing headers, the metrics and one log line. Every failure is an
answer: a `RequestError` as it says, a pipeline's input error as 422, anything else logged
and answered 424 (TEI's code for a failed inference), never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from contextlib import asynccontextmanager
from time import perf_counter

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from ..errors import MinidistilError, TokenizerError
from .batcher import Ticket
from .errors import RequestCancelled, RequestError, ServerClosing, too_large
from .routes import ROUTES
from .schemas import Limits, parse_json

log = logging.getLogger("minidistil.serve")


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


def to_json(value):
    """UTF-8 JSON of a result; NumPy scalars and arrays become numbers and lists. NaN is an error."""
    return json.dumps(value, allow_nan=False, default=_numpy_value).encode()


def _numpy_value(value):
    if hasattr(value, "tolist"):  # NumPy scalar or array
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


async def _disconnected(receive):
    """Returns when the client has gone (after the body is read, the next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def characters(item):
    """x-compute-characters of one input: a text's characters, a pair's, or a token-id list's length."""
    return sum(map(len, item)) if isinstance(item, tuple) else len(item)


def answer_for(exc):
    """The RequestError that answers an exception raised while computing a response."""
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, TokenizerError):
        return RequestError(422, "tokenizer", str(exc))
    if isinstance(exc, ServerClosing):
        return RequestError(503, "unhealthy", str(exc))
    if isinstance(exc, MinidistilError):  # a pipeline's check of an input or option
        return RequestError(422, "validation", str(exc))
    log.error("inference failed", exc_info=exc)
    return RequestError(424, "backend", f"inference failed ({type(exc).__name__}: {exc}); see the server log")


class Exchange:
    """One request on its way through the server: what a route handler works with."""

    def __init__(self, request, server):
        self.request = request
        self.engine = server.engine
        self.settings = server.engine.settings
        self.limits = server.limits
        self.ticket = Ticket()
        self.started = perf_counter()
        self.characters = 0
        self.method = "single"  # "batch" for requests with a list of inputs (a metrics label, as TEI)

    async def body(self):
        limit = self.settings.payload_limit
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(f"the request body is {declared} bytes, more than --payload-limit {limit}")
        chunks, size = [], 0
        try:
            async for chunk in self.request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(f"the request body is more than --payload-limit {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise ClientGone() from None
        return b"".join(chunks)

    async def json(self):
        return parse_json(await self.body())

    def count(self, inputs, single):
        """Note the inputs of this request (for x-compute-characters and the metrics label)."""
        self.method = "single" if single else "batch"
        self.characters = sum(map(characters, inputs))

    async def run(self, fn, *args):
        """fn(engine, *args) in a request thread; ClientGone if the client leaves first."""
        work = asyncio.wrap_future(self.engine.submit(fn, self.engine, *args, ticket=self.ticket))
        watcher = asyncio.ensure_future(_disconnected(self.request.receive))
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not work.done():
            self.ticket.cancel()  # its rows are dropped before they cost a forward pass
            work.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody waits for it now
            raise ClientGone()
        exc = work.exception()
        if isinstance(exc, RequestCancelled):
            raise ClientGone()
        if exc is not None:
            raise answer_for(exc)
        return work.result()

    def timing_headers(self):
        """TEI's headers: milliseconds of each part, and the characters and tokens computed."""
        t = self.ticket
        total = str(int((perf_counter() - self.started) * 1e3))
        return {
            "x-compute-type": self.engine.backend,
            "x-compute-time": total,
            "x-total-time": total,
            "x-compute-characters": str(self.characters),
            "x-compute-tokens": str(t.tokens),
            "x-tokenization-time": str(int(t.processing_time * 1e3)),
            "x-queue-time": str(int(t.queue_time * 1e3)),
            "x-inference-time": str(int(t.inference_time * 1e3)),
        }

    def reply(self, result, timed=True):
        try:
            content = to_json(result)
        except ValueError:  # NaN or infinity in a result
            raise RequestError(424, "backend", "the model produced a NaN or infinite value") from None
        headers = self.timing_headers() if timed else None
        return Response(content, media_type="application/json", headers=headers)


class Server:
    """What the routes share: the engine, the metrics, the limits; requests in flight."""

    def __init__(self, engine, metrics):
        self.engine = engine
        self.metrics = metrics
        self.limits = Limits(engine.settings.max_client_batch_size, engine.settings.auto_truncate,
                             engine.model.config.vocab_size)
        self.in_flight = 0
        api_key = engine.settings.api_key
        self._authorization = None if api_key is None else f"Bearer {api_key}".encode()

    def authorized(self, request):
        if self._authorization is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, self._authorization)


def endpoint(server, handler, *, protected=True, counted=True, openai=False):
    """The ASGI endpoint for `handler(exchange) -> Response`, with everything around it.

    protected: needs the API key. counted: takes a place among --max-concurrent-requests.
    openai: errors in OpenAI's shape.
    """
    metrics = server.metrics

    async def serve(request):
        exchange = Exchange(request, server)
        status, note = 500, ""
        held = False
        try:
            if protected and not server.authorized(request):
                raise RequestError(401, "unauthorized", "missing or wrong API key: send Authorization: Bearer <key>")
            if counted:
                if server.in_flight >= server.engine.settings.max_concurrent_requests:
                    raise RequestError(429, "overloaded", "Model is overloaded: "
                                       f"{server.in_flight} requests in flight (--max-concurrent-requests)")
                server.in_flight += 1
                held = True
                metrics.in_flight.set(server.in_flight)
            response = await handler(exchange)
            status = response.status_code
            if counted:
                metrics.observe_success(exchange.method, exchange.ticket, perf_counter() - exchange.started)
            return response
        except ClientGone:
            status, note = 499, " (client went away)"  # nginx's code for it, in the log only
            metrics.failures.labels(err="cancelled").inc()
            return Response(status_code=499)
        except Exception as exc:  # noqa: BLE001 - every failure is an answer (answer_for logs the unexpected)
            error = answer_for(exc)
            status, note = error.status, f" ({error.error_type}: {error.message})"
            metrics.failures.labels(err=error.error_type).inc()
            return Response(error.body(openai), status_code=error.status, media_type="application/json")
        finally:
            if counted:
                metrics.requests.labels(method=exchange.method).inc()
            if held:
                server.in_flight -= 1
                metrics.in_flight.set(server.in_flight)
            t = exchange.ticket
            client = request.client
            log.info("%s %s %d %.1f ms tokens=%d queue=%.1f ms inference=%.1f ms client=%s%s", request.method,
                     request.url.path, status, (perf_counter() - exchange.started) * 1e3, t.tokens,
                     t.queue_time * 1e3, t.inference_time * 1e3, f"{client.host}:{client.port}" if client else "-",
                     note)

    return serve


def create_app(engine, metrics):
    """The Starlette app serving `engine` (already started); on shutdown the engine finishes and stops."""
    server = Server(engine, metrics)

    @asynccontextmanager
    async def lifespan(app):
        yield
        log.info("finishing queued work and stopping the model worker")
        await asyncio.get_running_loop().run_in_executor(None, engine.close)

    async def no_route(request, exc):
        status = getattr(exc, "status_code", 404)
        what = "no such route" if status == 404 else f"{request.method} is not allowed here"
        log.info("%s %s %d", request.method, request.url.path, status)
        error = RequestError(status, "not_found" if status == 404 else "method_not_allowed",
                             f"{what}: {request.method} {request.url.path}")
        return Response(error.body(request.url.path.startswith("/v1/")), status_code=status,
                        media_type="application/json")

    routes = [Route(path, endpoint(server, handler, **options), methods=[method])
              for method, path, handler, options in ROUTES]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route})
