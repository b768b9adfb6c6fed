"""Many machines: a sweep's systems as Ray tasks (``RayExecutor``), one system's agents in Ray
actors (``RayPlacement``). Ray is optional (``pip install 'perspectives[ray]'``)."""

from __future__ import annotations

from ..errors import InputError


def require_ray():
    """The ``ray`` module; raises InputError saying how to install it if it is missing."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "Ray is not installed: pip install 'perspectives[ray]' (or pip install ray)",
            field="--executor",
            value="ray",
        ) from None
    return ray


# What a task or actor takes from the driver's environment: the device, the dtype, and the
# cache of initial models and embeddings.
FORWARDED_ENV = ("PERSPECTIVES_DEVICE", "PERSPECTIVES_DTYPE", "PERSPECTIVES_CACHE", "HF_HOME")


def forwarded_env(**over: str) -> dict[str, str]:
    """The driver's settings of ``FORWARDED_ENV`` that are set, with ``over`` on top."""
    import os

    return {**{k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}, **over}


def connect(address: str | None = None, num_cpus: int | None = None):
    """Join the Ray cluster at ``address`` (``auto``: the one started on this machine with
    ``ray start``; ``ray://host:port``: a remote one), or start a new one on this machine
    (``num_cpus``: its CPUs, default all) if ``address`` is None. A process joins one cluster:
    if it has already, that one is used. Returns the ``ray`` module."""
    import signal
    import threading

    ray = require_ray()
    if ray.is_initialized():
        return ray
    main = threading.current_thread() is threading.main_thread()
    ours = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                address="local", num_cpus=num_cpus, log_to_driver=False, include_dashboard=False
            )
    finally:
        # Ray's own SIGTERM handler aborts the process; a scheduler's stop must instead be
        # Ctrl-C (the sweep cancels its tasks and records where each system stopped).
        if main and callable(ours):
            signal.signal(signal.SIGTERM, ours)
    return ray


from .ray_agents import RayPlacement  # noqa: E402 - they use connect and require_ray above
from .ray_sweep import RayExecutor  # noqa: E402

__all__ = ["RayExecutor", "RayPlacement", "connect", "forwarded_env", "require_ray"]
