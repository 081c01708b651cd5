"""How many threads a map_batches actor should run: the CPUs Ray reserved for it."""

import math


def actor_threads():
    """The CPUs Ray assigned to the current task or actor (at least 1), or None outside a Ray worker.

    Outside Ray (or without it installed) the caller keeps minidistil's default, every core. Inside a
    worker, using more threads than the CPUs Ray reserved would oversubscribe the node: with two 1-CPU
    actors on a 2-core node, each must run one thread, not two.
    """
    try:
        import ray  # the real Ray: absolute import, not this package
    except ImportError:
        return None
    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    return max(1, math.floor(cpus))
