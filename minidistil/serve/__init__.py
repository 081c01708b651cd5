"""`minidistil serve`: an HTTP inference server speaking TEI's, OpenAI's and the Inference API's shapes.

Needs the `serve` extra (pip install minidistil[serve]). The pieces, from the outside in:

- command.py: the CLI options and the run (bind, uvicorn, graceful shutdown)
- app.py: what every request goes through (API key, concurrency, body limit, errors, headers, logs)
- routes.py: the routes and their response shapes; schemas.py: checking request bodies
- inference.py: what each route computes, as pipeline calls in request threads
- engine.py: the served pipeline; batcher.py + packing.py: dynamic batching in one model thread
- metrics.py: Prometheus metrics; settings.py, tasks.py, errors.py

Nothing here is imported by `import minidistil`; only command.py's options are read by the CLI.
"""
