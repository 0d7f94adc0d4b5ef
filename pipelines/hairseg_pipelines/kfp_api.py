"""Talking to a Kubeflow Pipelines API server: upload a pipeline version, start a run.

Every failure a person can fix (host unreachable, bad token, version already uploaded,
pipeline missing) becomes a :class:`~hairseg.errors.HairsegError` with one readable line.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hairseg.errors import EXIT_FAILURE, EXIT_USAGE, HairsegError

__all__ = ["RunInfo", "UploadInfo", "connect", "start_run", "upload"]

HEALTHZ = "/apis/v2beta1/healthz"
EXIT_CONFLICT = 3  # the version exists already: distinct, so CI can treat it as "nothing to do"


@dataclass(frozen=True)
class UploadInfo:
    pipeline_id: str
    version_id: str
    version_name: str
    created_pipeline: bool
    url: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    url: str


def _unreachable(host: str, exc: BaseException) -> HairsegError:
    text = f"{exc!r} {getattr(exc, 'reason', '')}"
    if (
        isinstance(exc, socket.gaierror)
        or "Name or service not known" in text
        or ("nodename nor servname" in text)
        or "NameResolution" in text
        or "Temporary failure in name resolution" in text
    ):
        why = "host name does not resolve"
    elif isinstance(exc, TimeoutError | socket.timeout) or "timed out" in text.lower():
        why = "connection timed out"
    elif isinstance(exc, ConnectionRefusedError) or "Connection refused" in text:
        why = "connection refused"
    else:
        why = str(getattr(exc, "reason", exc)) or type(exc).__name__
    return HairsegError(
        f"cannot reach the Kubeflow Pipelines API at {host}: {why} "
        "(check --host / KFP_HOST, or port-forward ml-pipeline-ui)"
    )


def _auth_failed(host: str, status: int) -> HairsegError:
    return HairsegError(
        f"Kubeflow Pipelines at {host} refused the credentials (HTTP {status}): "
        "pass a valid bearer token with --token / KFP_TOKEN"
    )


def _preflight(host: str, token: str | None, timeout_s: float) -> None:
    """One GET of the healthz endpoint, so that an unreachable host or a bad token fails
    fast and plainly (``kfp.Client`` itself retries healthz for ~25 s and logs tracebacks)."""
    request = urllib.request.Request(host.rstrip("/") + HEALTHZ)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read(65536)
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise _auth_failed(host, exc.code) from None
        raise HairsegError(
            f"{host} does not look like a Kubeflow Pipelines API: GET {HEALTHZ} answered "
            f"HTTP {exc.code}"
        ) from None
    except urllib.error.URLError as exc:
        raise _unreachable(
            host, exc.reason if isinstance(exc.reason, BaseException) else exc
        ) from None
    except (OSError, TimeoutError) as exc:
        raise _unreachable(host, exc) from None
    except ValueError as exc:  # a malformed URL
        raise HairsegError(f"bad KFP host {host!r}: {exc}", exit_code=EXIT_USAGE) from None
    try:
        json.loads(body or b"{}")
    except ValueError:
        raise HairsegError(
            f"{host} answered GET {HEALTHZ} with {content_type or 'non-JSON'} instead of the KFP "
            "API (a login page? pass --token / KFP_TOKEN, or use the API address)"
        ) from None


@contextlib.contextmanager
def _kfp_errors(host: str, what: str) -> Iterator[None]:
    """Turn the KFP client's exceptions into one-line :class:`HairsegError` s."""
    import kfp_server_api
    import urllib3.exceptions

    try:
        yield
    except kfp_server_api.ApiException as exc:
        status = int(exc.status or 0)
        body = (exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body or "")).strip()
        message = body
        with contextlib.suppress(ValueError, AttributeError):
            doc = json.loads(body)
            message = doc.get("message") or doc.get("error") or body
        message = " ".join(str(message).split())[:300]
        if status in (401, 403):
            raise _auth_failed(host, status) from None
        if status == 409 or "already exist" in body.lower():
            raise HairsegError(
                f"{what}: already exists on {host} ({message})", exit_code=EXIT_CONFLICT
            ) from None
        raise HairsegError(
            f"{what} failed: HTTP {status} {exc.reason or ''} from {host}: {message}"
        ) from None
    except urllib3.exceptions.MaxRetryError as exc:
        raise _unreachable(host, exc.reason or exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(host, exc) from None


def connect(
    host: str, token: str | None = None, namespace: str | None = None, *, timeout_s: float = 10.0
) -> Any:
    """A ``kfp.Client`` on ``host`` after a fast reachability/auth check."""
    if not host:
        raise HairsegError("no KFP host: pass --host or set KFP_HOST", exit_code=EXIT_USAGE)
    if not host.startswith(("http://", "https://")):
        raise HairsegError(
            f"KFP host {host!r} must start with http:// or https://", exit_code=EXIT_USAGE
        )
    _preflight(host, token, timeout_s)
    import kfp

    kwargs: dict[str, Any] = {"host": host.rstrip("/"), "existing_token": token or None}
    if namespace:
        kwargs["namespace"] = namespace
    with (
        _kfp_errors(host, "connecting"),
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later": noise
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(**kwargs)


def _ui_prefix(client: Any) -> str:
    return client._get_url_prefix()  # the UI address kfp itself prints links with


def upload(
    client: Any, host: str, package: Path, pipeline_name: str, version_name: str, description: str
) -> UploadInfo:
    """Create pipeline ``pipeline_name`` (first upload) and add version ``version_name``."""
    with (
        _kfp_errors(host, f"pipeline {pipeline_name!r}"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        pipeline_id = client.get_pipeline_id(pipeline_name)
        created = pipeline_id is None
        if created:
            pipeline_id = client.upload_pipeline(
                str(package), pipeline_name=pipeline_name, description=description
            ).pipeline_id
    with (
        _kfp_errors(host, f"pipeline version {pipeline_name} {version_name!r}"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        version = client.upload_pipeline_version(
            str(package),
            pipeline_version_name=version_name,
            pipeline_id=pipeline_id,
            description=description,
        )
    url = f"{_ui_prefix(client)}/#/pipelines/details/{pipeline_id}/version/{version.pipeline_version_id}"
    return UploadInfo(
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
        version_name=version_name,
        created_pipeline=created,
        url=url,
    )


def _find_version(client: Any, pipeline_id: str, version_name: str | None) -> Any:
    filter_ = None
    if version_name:
        filter_ = json.dumps(
            {
                "predicates": [
                    {"operation": "EQUALS", "key": "display_name", "stringValue": version_name}
                ]
            }
        )
    response = client.list_pipeline_versions(
        pipeline_id=pipeline_id, page_size=1, sort_by="created_at desc", filter=filter_
    )
    versions = response.pipeline_versions or []
    return versions[0] if versions else None


def start_run(
    client: Any,
    host: str,
    pipeline_name: str,
    version_name: str | None,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
) -> RunInfo:
    """Start a run of an uploaded pipeline version in ``experiment`` (created if missing)."""
    with _kfp_errors(host, f"run of {pipeline_name}"), contextlib.redirect_stdout(io.StringIO()):
        pipeline_id = client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            raise HairsegError(
                f"pipeline {pipeline_name!r} is not on {host}: run `hairseg pipeline upload` first",
                exit_code=EXIT_FAILURE,
            )
        version = _find_version(client, pipeline_id, version_name)
        if version is None:
            raise HairsegError(
                f"pipeline {pipeline_name!r} has no version {version_name!r} on {host}: "
                "run `hairseg pipeline upload` first (or pass --version latest)"
            )
        experiment_id = client.create_experiment(name=experiment).experiment_id
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name,
            params=dict(params),
            pipeline_id=pipeline_id,
            version_id=version.pipeline_version_id,
        )
    return RunInfo(
        run_id=run.run_id,
        experiment_id=experiment_id,
        url=f"{_ui_prefix(client)}/#/runs/details/{run.run_id}",
    )
