"""What a failed Serve call means to a client: the studio's own error (a 400 or 503 raised in a replica comes
back as it was), a full deployment (503 with Retry-After), or a replica lost mid-request (503)."""

from __future__ import annotations

from tts_studio.errors import EngineUnavailable, StudioError


def translate(what: str, exc: BaseException) -> BaseException:
    """The error a client sees for `exc`, raised by a call to the deployment `what`."""
    from ray.exceptions import RayActorError, RayError, RayTaskError, TaskCancelledError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    if isinstance(exc, StudioError):
        return exc
    if isinstance(exc, RayTaskError):
        cause: object = exc.cause
        if isinstance(cause, StudioError):
            return cause
        if isinstance(cause, BaseException) and not isinstance(cause, RayTaskError):
            return translate(what, cause)
    unchanged: BaseException = exc
    if isinstance(exc, TaskCancelledError):
        return unchanged  # we cancelled it (the caller left): nothing to tell anyone
    if isinstance(exc, BackPressureError):
        retry = max(1, round(exc.retry_after_s or 5))
        return EngineUnavailable(
            f"'{what}' is at capacity on the cluster (every replica busy, the queue full); retry shortly.",
            code="device_busy",
            headers={"Retry-After": str(retry)},
        )
    if isinstance(exc, RayActorError | DeploymentUnavailableError):
        return EngineUnavailable(
            f"The replica serving '{what}' was lost mid-request; Ray Serve is replacing it: retry shortly.",
            code="replica_lost",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, RayError):
        return EngineUnavailable(
            f"'{what}' failed on the cluster ({type(exc).__name__}); see the Ray logs.", code="cluster_error"
        )
    return unchanged
