"""The HTTP side: KServe's ModelServer, bound where we say, hardened at the boundary.

KServe 0.21 hard-codes ``host="0.0.0.0"`` in ``RESTServer`` and offers no flag for it. We
subclass at the narrowest point: :class:`HairsegRESTServer` sets ``uvicorn.Config.host``
after KServe builds the config, and :class:`HairsegModelServer.start` builds that REST
server (single process, or KServe's own multi-process server with it inside) instead of
the stock one. Locally the host is ``127.0.0.1``; the container passes ``0.0.0.0``.

At the boundary (:class:`BoundaryMiddleware`, pure ASGI, outermost):

- the body is read once with a size limit (413 beyond ``max_body_bytes``, checked on the
  declared ``Content-Length`` before reading and on the bytes actually read);
- an empty POST body is a 400;
- ``X-Request-Id`` is honoured (printable, at most 128 characters) or generated, passed
  to the model through the request headers, echoed on the response and put on every log
  line of the request;
- load shedding: past ``max_inflight`` V1/V2 requests in flight in this worker a new one
  gets an immediate 503 ``{"error": ...}`` with ``Retry-After: 1`` (counted in
  ``hairseg_requests_total{code="503"}``; ``hairseg_inflight_requests`` is the gauge),
  so a burst beyond capacity is answered in milliseconds instead of queueing into client
  timeouts; health, metrics and the demo page are never shed;
- one JSON access-log line and the ``hairseg_requests_total`` / ``hairseg_request_seconds``
  metrics per request;
- ``GET /demo``: the try-on demo page (:func:`demo_html`), self-contained, calling V1;
- at lifespan shutdown (after uvicorn has stopped accepting connections and finished
  the requests in flight) every model is stopped, which flushes the inference log;
- the inference fast path: a POST to ``/v1/models/{name}:predict`` or
  ``/v2/models/{name}/infer`` of a ready model goes from here straight to KServe's
  dataplane (the same ``decode`` / ``infer`` / ``encode`` calls as KServe's route and
  ours), skipping FastAPI's router, request object, dependency solver and exception
  middlewares: ~1 ms of pure-Python work per request on this machine (py-spy,
  docs/BENCHMARKS.md "Serving overhead"). A client mistake (``InvalidInput``) is answered
  400 exactly as the exception handler would; anything else (unknown model, not ready,
  a fault) is handed to the full application with the body replayed, which gives the
  usual answer.

KServe 0.21's V2 REST path decodes BYTES inputs of the binary-data extension as UTF-8
(``InferRequest.from_bytes`` → ``set_data_from_numpy(binary_data=False)``), so raw JPEG
bytes fail with a 500; its JSON path lets pydantic answer 422 ``{"detail": ...}``. Our
``/v2/models/{name}/infer`` route (registered before KServe's, same dataplane) parses the
binary extension itself, keeping raw bytes, and answers every malformed request with a
400 ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import logging.config
import re
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, ORJSONResponse
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hairseg_serving.logs import REQUEST_ID, log_config
from hairseg_serving.metrics import IN_FLIGHT, REQUEST_SECONDS, REQUESTS
from hairseg_serving.predictor import HairsegModel
from hairseg_serving.settings import ServeConfig

__all__ = ["BoundaryMiddleware", "HairsegModelServer", "HairsegRESTServer", "run_server"]

log = logging.getLogger("hairseg_serving.access")
_REQUEST_ID_OK = re.compile(r"^[\x21-\x7e]{1,128}$")
_HEALTH = frozenset({"/", "/v2/health/live", "/v2/health/ready"})


def _json_error(
    status: int, message: str, *extra_headers: tuple[bytes, bytes]
) -> tuple[dict[str, Any], dict[str, Any]]:
    body = orjson.dumps({"error": message})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra_headers,
        ],
    }
    return start, {"type": "http.response.body", "body": body}


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY  # as ORJSONResponse


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (uvicorn's own choice for its workers)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with kserve's uvicorn[standard]
        return None
    return uvloop.new_event_loop


@functools.cache
def _request_counter(endpoint: str, status: int) -> Any:
    return REQUESTS.labels(endpoint, str(status))  # labels() locks and hashes each call


@functools.cache
def _request_histogram(endpoint: str) -> Any:
    return REQUEST_SECONDS.labels(endpoint)


def model_name_of(path: str, endpoint: str) -> str | None:
    """``NAME`` in ``/v1/models/NAME:predict`` or ``/v2/models/NAME/infer`` (no slash)."""
    if endpoint == "v1":
        name = path[len("/v1/models/") : -len(":predict")]
    elif endpoint == "v2":
        name = path[len("/v2/models/") : -len("/infer")]
    else:
        return None
    return name if name and "/" not in name else None


def endpoint_of(path: str) -> str:
    """A low-cardinality label for a request path."""
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return "v1"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2"
    if path == "/metrics":
        return "metrics"
    if path in _HEALTH or path.startswith(("/v1/models", "/v2/models")):
        return "health"
    return "other"


class BoundaryMiddleware:
    """Body limit, request id, access log, request metrics, shutdown hook (pure ASGI)."""

    def __init__(
        self,
        app: Any,
        *,
        max_body_bytes: int,
        max_inflight: int = 0,
        access_log: bool = True,
        on_shutdown: Callable[[], None] | None = None,
        dataplane: Any = None,
    ) -> None:
        self.app = app
        self.dataplane = dataplane  # None: no fast path (everything through FastAPI)
        self.max_body_bytes = max_body_bytes
        self.max_inflight = max_inflight
        self.inflight = 0  # V1/V2 requests between arrival and response, this worker
        self.access_log = access_log
        self.on_shutdown = on_shutdown

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        request_id, declared = "", None
        for key, value in headers:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
        if not _REQUEST_ID_OK.match(request_id):
            request_id = uuid.uuid4().hex
            headers = [(k, v) for k, v in headers if k != b"x-request-id"]
            headers.append((b"x-request-id", request_id.encode()))
            scope = dict(scope, headers=headers)
        token = REQUEST_ID.set(request_id)
        path = scope.get("path", "")
        endpoint = endpoint_of(path)
        state = {"status": 500, "bytes_in": 0}
        counted = endpoint in ("v1", "v2")

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message = dict(message)
                message["headers"] = [
                    *[(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if counted:
                if self.max_inflight and self.inflight >= self.max_inflight:
                    counted = False
                    head, tail = _json_error(
                        503,
                        f"overloaded: {self.inflight} requests in flight in this worker "
                        f"(serve.max_inflight {self.max_inflight}); retry shortly",
                        (b"retry-after", b"1"),
                    )
                    await send_with_id(head)
                    await send(tail)
                    return
                self.inflight += 1
                IN_FLIGHT.inc()
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                body, error = await self._read_body(receive, declared)
                state["bytes_in"] = len(body)
                if error is None and not body and endpoint in ("v1", "v2"):
                    error = (
                        400,
                        "request body is empty; send JSON (V1/V2) or the V2 binary format",
                    )
                if error is not None:
                    head, tail = _json_error(*error)
                    await send_with_id(head)
                    await send(tail)
                    return
                if counted and self.dataplane is not None:
                    name = model_name_of(path, endpoint)
                    if name is not None and await self._fast_infer(
                        endpoint, name, body, scope["headers"], send_with_id, send
                    ):
                        return
                await self.app(scope, _replay(body, receive), send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if counted:
                self.inflight -= 1
                IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            _request_counter(endpoint, state["status"]).inc()
            _request_histogram(endpoint).observe(elapsed)
            if self.access_log:
                level = logging.INFO if endpoint in ("v1", "v2", "other") else logging.DEBUG
                if state["status"] >= 500:
                    level = logging.ERROR
                log.log(
                    level,
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": path,
                        "status": state["status"],
                        "duration_ms": round(elapsed * 1000, 3),
                        "bytes_in": state["bytes_in"],
                    },
                )
            REQUEST_ID.reset(token)

    async def _fast_infer(
        self,
        endpoint: str,
        name: str,
        body: bytes,
        raw_headers: list[tuple[bytes, bytes]],
        send_with_id: Any,
        send: Any,
    ) -> bool:
        """Answer an inference request without FastAPI; False: let the app answer it."""
        dataplane = self.dataplane
        model = dataplane.model_registry.get_model(name)
        if model is None or not model.ready:
            return False  # the app's 404 / 503
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        try:
            if endpoint == "v1":
                request, attributes = dataplane.decode(body=body, headers=headers)
            else:
                request, attributes = decode_v2(body, headers, name), {}
            response, response_headers = await dataplane.infer(
                model_name=name, request=request, headers=headers
            )
            response, extra = dataplane.encode(
                model_name=name, response=response, headers=headers, req_attributes=attributes
            )
        except InvalidInput as exc:
            content, status, out_headers = _invalid_input(exc), 400, {}
        except Exception:
            return False  # the app runs it again and answers as KServe does (500 + log)
        else:
            response_headers.update(extra)
            response_headers.pop("content-length", None)
            if endpoint == "v2":
                content, out_headers = v2_body(response, response_headers)
            else:  # KServe's V1 route: bytes/str as they are, anything else as JSON
                content, out_headers = response, response_headers
            status = 200
        if isinstance(content, str):
            content = content.encode()
        elif not isinstance(content, bytes):
            content = orjson.dumps(content, option=_JSON_OPTIONS)
            out_headers["content-type"] = "application/json"
        head = [
            (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in out_headers.items()
        ]
        head.append((b"content-length", str(len(content)).encode()))
        await send_with_id({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": content})
        return True

    async def _read_body(
        self, receive: Any, declared: bytes | None
    ) -> tuple[bytes, tuple[int, str] | None]:
        limit = self.max_body_bytes
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return b"", (400, f"Content-Length {declared!r} is not an integer")
            if size > limit:
                return b"", (413, f"request body is {size} bytes; the limit is {limit} bytes")
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                return b"", (413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None

    def _lifespan_receive(self, receive: Any) -> Any:
        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message.get("type") == "lifespan.shutdown" and self.on_shutdown is not None:
                try:
                    self.on_shutdown()
                except Exception:
                    logging.getLogger("hairseg_serving").exception("shutdown hook failed")
            return message

        return wrapped


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later reads wait for the disconnect, as usual

    return replay


# -- V2 infer ----------------------------------------------------------------------------


def parse_v2_binary(body: bytes, json_length: str, model_name: str) -> InferRequest:
    """The binary-data extension: a JSON header of ``json_length`` bytes, then the raw
    contents of each input that declares ``parameters.binary_data_size``, in order."""
    try:
        n = int(json_length)
    except ValueError:
        raise InvalidInput(
            f"{INFERENCE_CONTENT_LENGTH_HEADER} must be an integer, got {json_length!r}"
        ) from None
    if not 0 < n <= len(body):
        raise InvalidInput(
            f"{INFERENCE_CONTENT_LENGTH_HEADER} is {n} but the body has {len(body)} bytes"
        )
    header = _loads(body[:n], "the JSON header of the binary request")
    if not isinstance(header.get("inputs"), list) or not header["inputs"]:
        raise InvalidInput('the JSON header needs a non-empty "inputs" list')
    inputs, offset = [], n
    for i, spec in enumerate(header["inputs"]):
        if not isinstance(spec, dict):
            raise InvalidInput(f"inputs[{i}] must be an object")
        name, shape, datatype = spec.get("name"), spec.get("shape"), spec.get("datatype")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidInput(f"inputs[{i}] needs a string 'name' and 'datatype'")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise InvalidInput(f"inputs[{i}].shape must be a list of non-negative integers")
        params = spec.get("parameters") or {}
        if not isinstance(params, dict):
            raise InvalidInput(f"inputs[{i}].parameters must be an object")
        infer_input = InferInput(name=name, shape=shape, datatype=datatype, parameters=params)
        if "data" in spec:
            infer_input.data = spec["data"]
        elif "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(
                    f"inputs[{i}].parameters.binary_data_size must be an integer >= 0"
                )
            if offset + size > len(body):
                raise InvalidInput(
                    f"inputs[{i}] declares {size} binary bytes but only {len(body) - offset} follow"
                )
            infer_input._raw_data = body[offset : offset + size]
            offset += size
        else:
            raise InvalidInput(f"inputs[{i}] has neither 'data' nor parameters.binary_data_size")
        inputs.append(infer_input)
    if offset != len(body):
        raise InvalidInput(
            f"{len(body) - offset} unexpected byte(s) after the declared binary inputs"
        )
    outputs = header.get("outputs")
    requested = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise InvalidInput('"outputs" must be a list of objects with a "name"')
        requested = [RequestedOutput(o["name"], o.get("parameters")) for o in outputs]
    params = header.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput('"parameters" must be an object')
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=header.get("id"),
        parameters=params,
        request_outputs=requested,
    )


def _loads(data: bytes, what: str) -> Any:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def _validation_message(exc: ValidationError | RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts)


# -- the demo page ----------------------------------------------------------------------

_DEMO_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'"
)


def demo_html(config: ServeConfig) -> str:
    """The try-on demo page (``GET /demo``): plain HTML + JS, no external resource; it
    calls the V1 endpoint of this server, like any client."""
    import json

    from hairseg.tryon import SHADES

    page = (Path(__file__).parent / "demo.html").read_text(encoding="utf-8")
    for key, value in {
        "__MODEL__": config.model_name,
        "__SHADES__": json.dumps(sorted(SHADES)),
        "__SHADE__": config.default_color,
        "__TIER__": config.default_tier,
        "__INTENSITY__": f"{config.default_intensity:g}",
    }.items():
        page = page.replace(key, value)
    return page


def _demo_route(config: ServeConfig) -> Callable[..., Any]:
    page = demo_html(config)

    async def demo() -> HTMLResponse:
        # The CSP makes "no CDN" a property the browser enforces, not a promise.
        return HTMLResponse(page, headers={"content-security-policy": _DEMO_CSP})

    return demo


def decode_v2(body: bytes, headers: dict[str, str], model_name: str) -> InferRequest:
    """A V2 request body: the binary-data extension (raw bytes kept) or plain JSON."""
    json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER.lower())
    if json_length is not None:
        return parse_v2_binary(body, json_length, model_name)
    try:
        parsed = InferenceRequest.model_validate(_loads(body, "the request body"))
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from None
    return InferRequest.from_inference_request(parsed, model_name)


def v2_body(response: Any, headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
    """The V2 answer: binary (octet-stream) or a JSON-able dict (content type dropped)."""
    if isinstance(response, bytes):
        headers["content-type"] = "application/octet-stream"
    else:
        headers.pop("content-type", None)
    return response, headers


def _v2_infer_route(dataplane: Any) -> Callable[..., Any]:
    async def infer(model_name: str, request: Request) -> Response:
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        body = await request.body()
        headers = dict(request.headers)
        infer_request = decode_v2(body, headers, model_name)
        response, response_headers = await dataplane.infer(
            model_name=model_name, request=infer_request, headers=headers
        )
        response, extra = dataplane.encode(
            model_name=model_name, response=response, headers=headers, req_attributes={}
        )
        response_headers.update(extra)
        response_headers.pop("content-length", None)
        content, response_headers = v2_body(response, response_headers)
        if isinstance(content, bytes):
            return Response(content=content, headers=response_headers)
        return ORJSONResponse(content=content, headers=response_headers)

    return infer


def _invalid_input(exc: InvalidInput) -> dict[str, str]:
    # A client mistake, not a server fault: one line, no traceback (KServe logs both).
    logging.getLogger("hairseg_serving").info("bad request: %s", exc)
    return {"error": str(exc)}


async def _invalid_input_handler(_: Request, exc: InvalidInput) -> ORJSONResponse:
    return ORJSONResponse(status_code=400, content=_invalid_input(exc))


async def _validation_error_handler(_: Request, exc: RequestValidationError) -> ORJSONResponse:
    return ORJSONResponse(status_code=400, content={"error": _validation_message(exc)})


async def _http_error_handler(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
    return ORJSONResponse(
        status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers
    )


class HairsegRESTServer(RESTServer):
    """KServe's REST server on ``host``, with our boundary middleware and V2 route."""

    def __init__(self, *args: Any, host: str, config: ServeConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host  # KServe hard-codes 0.0.0.0
        self.config.access_log = False  # BoundaryMiddleware logs each request once
        self.serve_config = config

    def create_application(self) -> None:
        # Runs in every worker process: Python warnings (e.g. FastAPI deprecations raised
        # by KServe's own routes) become JSON log lines like everything else.
        logging.captureWarnings(True)
        super().create_application()

    def _add_middlewares(self, app: FastAPI) -> None:
        # KServe's TimingMiddleware only writes per-request trace lines: left out.
        registry = self.dataplane.model_registry

        def stop_models() -> None:
            for model in list(registry.get_models().values()):
                if callable(getattr(model, "stop", None)):
                    model.stop()

        app.add_middleware(
            BoundaryMiddleware,
            max_body_bytes=self.serve_config.max_body_bytes,
            max_inflight=self.serve_config.max_inflight,
            access_log=self.serve_config.access_log,
            on_shutdown=stop_models,
            dataplane=self.dataplane,
        )

    def _register_endpoints(self, app: FastAPI) -> None:
        infer = _v2_infer_route(self.dataplane)
        for path in ("/v2/models/{model_name}/infer",):
            app.add_api_route(path, infer, methods=["POST"], response_model=None)
        app.add_api_route("/demo", _demo_route(self.serve_config), methods=["GET"])
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(InvalidInput, _invalid_input_handler)
        app.add_exception_handler(RequestValidationError, _validation_error_handler)
        app.add_exception_handler(StarletteHTTPException, _http_error_handler)


def _listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket of its own for one worker, sharing the port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class HairsegMultiProcessServer(RESTServerMultiProcess):
    """KServe's multi-worker server with three changes, each measured.

    - Each worker listens on its own ``SO_REUSEPORT`` socket, so the kernel spreads new
      connections over the workers. With KServe's one shared socket, whichever worker is
      idle first accepts a burst of keep-alive connections and serves them all: the load
      test saw 2 workers serve ~150 requests/s at ~0.9 cores (docs/BENCHMARKS.md).
    - A worker that dies takes its socket with it (the supervisor keeps no copy), so
      the kernel stops handing it connections at once.
    - Only workers that exited are restarted. KServe pings every worker each 0.5 s with a
      5 s timeout from the moment it is spawned; a worker still importing its libraries and
      loading the model on a busy machine misses the ping and is killed and respawned,
      forever. Hang detection is left to the kubelet's liveness probe (one worker per pod
      there anyway).
    """

    async def start(self) -> None:
        for _ in range(self._rest_server.config.workers):
            self._processes.append(self._spawn())
        while not self.should_exit.is_set():
            await asyncio.sleep(0.5)
            await self.keep_subprocess_alive([])
        await self.terminate_all()

    def _spawn(self) -> RESTServerProcess:
        """A worker on a listening socket of its own, which only the worker holds: when
        it dies the kernel drops the socket from the port's SO_REUSEPORT group at once,
        so new connections go to the live workers instead of queueing on a socket that
        nobody accepts from until the replacement has loaded the model (the kill bench:
        requests hung into client timeouts while the parent kept its copy open)."""
        config = self._rest_server.config
        sock = _listening_socket(config.host, config.port)
        process = RESTServerProcess(
            [sock], self._rest_server.run, log_config_file=self.log_config_file
        )
        process.start()  # spawn: the child got its own descriptor at exec
        sock.close()
        return process

    async def keep_subprocess_alive(self, sockets: list[Any]) -> None:
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self._processes):
            if process._process.exitcode is None:
                continue
            logging.getLogger("hairseg_serving").warning(
                "worker exited; starting a new one",
                extra={"pid": process.pid, "exitcode": process._process.exitcode},
            )
            self._processes[idx] = self._spawn()


class HairsegModelServer(ModelServer):
    """KServe's ModelServer, serving HTTP only, on the host and limits of ``config``."""

    def __init__(self, config: ServeConfig, *, log_level: str = "INFO") -> None:
        super().__init__(
            http_port=config.port,
            workers=config.workers,
            enable_grpc=False,
            enable_docs_url=False,
            enable_latency_logging=False,
            grace_period=config.grace_period_s,
        )
        self.serve_config = config
        self.log_level = log_level

    def start(self, models: list[Any]) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        cfg = self.serve_config
        common = {
            "app": FASTAPI_APP_IMPORT_STRING,
            "data_plane": self.dataplane,
            "model_repository_extension": self.model_repository_extension,
            "http_port": self.http_port,
            "workers": self.workers,
            "grace_period": self.grace_period,
            "event_loop": self.event_loop,
            "timeout_keep_alive": self.timeout_keep_alive,
        }
        rest = HairsegRESTServer(**common, host=cfg.host, config=cfg)
        if self.workers > 1:
            # A dict log config is accepted too; each worker process applies it.
            server = HairsegMultiProcessServer(**common, log_config_file=log_config(self.log_level))
            server._rest_server = rest  # KServe's multi-process server, our REST server
            self._rest_multiprocess_server = server
            self.servers.append(server.start())
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        self.register_signal_handler()
        logging.getLogger("hairseg_serving").info(
            "serving",
            extra={
                "host": cfg.host,
                "port": cfg.port,
                "workers": cfg.workers,
                "models": [m.name for m in models],
            },
        )

        # KServe runs one worker on asyncio's default loop (asyncio.run); uvicorn gives its
        # multi-process workers uvloop. One worker per pod is the cluster's setting: give it
        # uvloop too (faster socket writes and callbacks, docs/BENCHMARKS.md).
        async def serve() -> None:
            self.setup_event_loop()  # KServe's exception handler and executor, this loop
            await self._serve()

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve())


def run_server(config: ServeConfig, model_path: str | Path, *, log_level: str = "INFO") -> None:
    """Load the model (warm-up included), then serve until SIGTERM/SIGINT."""
    logging.config.dictConfig(log_config(log_level))
    model = HairsegModel(config.model_name, model_path, config)
    model.load()
    HairsegModelServer(config, log_level=log_level).start([model])
