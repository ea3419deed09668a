"""The aiohttp side: POST /slack/events into Bolt, GET /healthz for load balancers.

Bolt's own aiohttp adapter parses the body before it checks the signature, and answers a
broken JSON body with a 500. Here a body that cannot be parsed is a 401 when its signature is
wrong and a 400 when it is right, and Bolt only ever sees well-formed payloads.
"""

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.background import new_ref

if TYPE_CHECKING:
    from bot.app import Threadgate

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
THREADGATE_KEY = web.AppKey("threadgate", object)


class BadBody(Exception):
    pass


def check_shape(body: str, content_type: str) -> None:
    """Refuse what Bolt would choke on: the envelope must be an object with a known shape."""
    if "json" in content_type or body.lstrip().startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            raise BadBody("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadBody("body is not a JSON object")
        if data.get("type") == "event_callback" and not isinstance(data.get("event"), dict):
            raise BadBody("event_callback without an event object")
        return
    form = parse_qs(body, keep_blank_values=True)
    if "payload" in form:
        try:
            payload = json.loads(form["payload"][0])
        except ValueError:
            raise BadBody("payload is not valid JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise BadBody("payload is not an object with a type")
        return
    if "command" in form:
        return
    raise BadBody("neither an event, an interaction nor a command")


def _headers(request: web.Request) -> dict[str, str | Sequence[str]]:
    headers: dict[str, str | Sequence[str]] = {}
    for key, value in request.headers.items():
        existing = headers.get(key.lower())
        headers[key.lower()] = [*(existing or []), value]
    return headers


def build_web_app(threadgate: "Threadgate", *, serve_events: bool = True) -> web.Application:
    secret = threadgate.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value()) if secret else None

    async def slack_events(request: web.Request) -> web.Response:
        if not threadgate.health.ready:
            return web.json_response({"error": "starting up"}, status=503)
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return web.Response(status=413, text="body too large")
        headers = _headers(request)
        if verifier is None or not verifier.is_valid_request(raw, dict(request.headers)):
            return web.Response(status=401, text="invalid or stale signature")
        try:
            body = raw.decode("utf-8")
            check_shape(body, request.headers.get("Content-Type", ""))
        except UnicodeDecodeError:
            return web.Response(status=400, text="malformed body: not UTF-8")
        except BadBody as exc:
            return web.Response(status=400, text=f"malformed body: {exc}")
        bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        try:
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
        health = threadgate.health
        status = 200 if health.ready else 503
        return web.json_response(
            {"ok": health.ready, "database": health.migrated, "slack": health.slack_ok},
            status=status,
        )

    app = web.Application(client_max_size=MAX_BODY)
    app[THREADGATE_KEY] = threadgate
    if serve_events:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    return app
