"""The aiohttp side: POST /slack/events into Bolt, GET /healthz for load balancers, GET
/metrics for Prometheus (behind a bearer token when THREADGATE_METRICS_TOKEN is set), and with
OAuth (many workspaces) GET /slack/install and GET /slack/oauth_redirect into the install flow.

Bolt's own aiohttp adapter parses the body before it checks the signature, and answers a
broken JSON body with a 500. Here a forged body is a 401 before anything parses it, a signed
body that Bolt cannot parse or route is a 400 (see `envelope`), and Bolt only ever routes
well-formed payloads.
"""

import hmac
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot import log_context
from bot.container import Threadgate
from bot.metrics import request_kind
from bot.runtime.background import new_ref
from bot.slack import envelope
from bot.slack.install import INSTALL_PATH, REDIRECT_PATH, InstallFlow
from storage.approvals import count_pending
from storage.database import UNAVAILABLE

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
THREADGATE_KEY = web.AppKey("threadgate", object)


def _signed(verifier: SignatureVerifier | None, body: str, request: web.Request) -> bool:
    """An early gate so that a forged body is a 401 before we parse it; Bolt checks again."""
    if verifier is None:
        return False
    try:
        return verifier.is_valid_request(body, dict(request.headers))
    except ValueError:  # a timestamp header that is not a number
        return False


def _headers(request: web.Request) -> dict[str, str | Sequence[str]]:
    headers: dict[str, str | Sequence[str]] = {}
    for key, value in request.headers.items():
        existing = headers.get(key.lower())
        headers[key.lower()] = [*(existing or []), value]
    return headers


def _web_response(response: BoltResponse) -> web.Response:
    """Bolt's response as aiohttp's; a header Bolt holds as a list (Set-Cookie) is repeated."""
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in response.headers.items():
        if key.lower() == "content-length":
            continue
        for one in value if isinstance(value, list) else [value]:
            headers.add(key, str(one))
    return web.Response(status=response.status, body=response.body, headers=headers)


def _install_routes(app: web.Application, threadgate: Threadgate, flow: InstallFlow) -> None:
    def bolt_request(request: web.Request) -> AsyncBoltRequest:
        return AsyncBoltRequest(body="", query=request.query_string, headers=_headers(request))

    async def install(request: web.Request) -> web.Response:
        if not threadgate.health.migrated:
            return web.Response(status=503, text="starting up")
        return _web_response(await flow.handle_installation(bolt_request(request)))

    async def oauth_redirect(request: web.Request) -> web.Response:
        if not threadgate.health.migrated:
            return web.Response(status=503, text="starting up")
        return _web_response(await flow.handle_callback(bolt_request(request)))

    app.router.add_get(INSTALL_PATH, install)
    app.router.add_get(REDIRECT_PATH, oauth_redirect)


def build_web_app(threadgate: Threadgate, *, serve_events: bool = True) -> web.Application:
    secret = threadgate.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value()) if secret else None

    metrics, tracing = threadgate.metrics, threadgate.tracing

    async def slack_events(request: web.Request) -> web.Response:
        if not threadgate.health.ready:
            metrics.requests.labels(kind="unknown", status="503").inc()
            return web.json_response({"error": "starting up"}, status=503)
        started = time.perf_counter()
        seen: dict[str, str] = {}
        with (
            log_context.bound(request_id=log_context.new_request_id()),
            tracing.span("threadgate.slack_request") as span,
            threadgate.ack_first.request(),
        ):
            response = await _handle(request, seen)
            kind = request_kind(seen.get("kind"))
            span.set_attribute("threadgate.kind", kind)
            span.set_attribute("http.response.status_code", response.status)
        metrics.requests.labels(kind=kind, status=str(response.status)).inc()
        metrics.ack_seconds.observe(time.perf_counter() - started)
        return response

    async def _handle(request: web.Request, seen: dict[str, str]) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return web.Response(status=413, text="body too large")
        headers = _headers(request)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return web.Response(status=400, text="malformed body: not UTF-8")
        if not _signed(verifier, body, request):
            return web.Response(status=401, text="invalid or stale signature")
        try:
            bolt_request = envelope.parse(body, query=request.query_string, headers=headers)
        except envelope.BadBody as exc:
            return web.Response(status=400, text=f"malformed body: {exc}")
        seen["kind"] = _kind(bolt_request.body) or "unknown"
        context = bolt_request.context
        try:
            with log_context.bound(team=context.team_id, channel=context.channel_id):
                response = await threadgate.bolt.async_dispatch(bolt_request)
        except Exception:
            ref = new_ref()
            log.exception("dispatch failed (ref %s)", ref)
            return web.json_response({"error": "internal error", "ref": ref}, status=500)
        resp_headers: dict[str, Any] = {
            k: v[0] if isinstance(v, list) else v for k, v in response.headers.items()
        }
        resp_headers.pop("content-length", None)
        return web.Response(status=response.status, body=response.body, headers=resp_headers)

    async def healthz(_request: web.Request) -> web.Response:
        """Ready, and the database answers now: a process whose database is gone takes no
        traffic it could not store."""
        health = threadgate.health
        database = health.migrated and await threadgate.db.reachable()
        ok = health.ready and database
        return web.json_response(
            {"ok": ok, "database": database, "slack": health.slack_ok},
            status=200 if ok else 503,
        )

    token = threadgate.settings.metrics_token
    expected = f"Bearer {token.get_secret_value()}".encode() if token else None

    async def pending() -> int | None:
        try:
            return await count_pending(threadgate.db)
        except UNAVAILABLE:
            return None  # the gauge keeps its last value; the error is counted

    async def scrape(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        body = await metrics.render(pending)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=MAX_BODY)
    app[THREADGATE_KEY] = threadgate
    if serve_events:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", scrape)
    if threadgate.install is not None:
        _install_routes(app, threadgate, threadgate.install)
    return app


def _kind(body: dict[str, Any]) -> str | None:
    if "command" in body and "type" not in body:
        return "slash_command"
    kind = body.get("type")
    return kind if isinstance(kind, str) else None
