"""`python -m bot` serves; `python -m bot migrate` upgrades the database and exits;
`python -m bot reencrypt` reseals stored data with the first encryption key and exits;
`python -m bot audit` prints the audit log;
`python -m bot check-config [FILE]` checks a config file and prints its effective policy;
`python -m bot console` talks to the agent in a terminal, with no Slack app.

The only place that reads the environment. Bad settings or a bad config file end start-up
with one line naming the problem and exit code 2, never a traceback.
"""

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from pydantic import ValidationError
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import SQLAlchemyError

from bot import audit_export
from bot.app import build_app
from bot.check_config import check as config_report
from bot.config import ConfigError
from bot.console import session as console
from bot.container import Threadgate
from bot.log_redaction import configure_logging
from bot.settings import ConfigLocation, ConsoleSettings, DatabaseSettings, Settings
from bot.slack import socket_mode
from bot.slack.http_server import build_web_app
from storage import schema, sealed_columns
from storage.crypto import SETTING, DecryptionError
from storage.database import Database, driver_threads_finished

log = logging.getLogger("threadgate")
S = TypeVar("S", bound=DatabaseSettings)

USAGE = "usage: python -m bot [serve | migrate | reencrypt | audit | check-config [FILE] | console]"
FATAL_SLACK_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}


def _settings_errors(exc: ValidationError) -> list[str]:
    """One line per problem, so a bad deploy is fixed in one round rather than one per setting."""
    lines = []
    for error in exc.errors():
        name = "_".join(str(p) for p in error["loc"]).upper()
        reason = error["msg"].removeprefix("Value error, ")
        if not name:
            lines.append(f"threadgate: {reason}")
        elif error["type"] == "missing":
            lines.append(f"threadgate: setting {name} is missing")
        else:
            lines.append(f"threadgate: setting {name} is invalid: {reason}")
    return lines


# Bolt reads these from the environment by itself when it is built: SLACK_BOT_TOKEN next to the
# client we hand it makes it warn "`token` will be unused" on every start, and SLACK_CLIENT_ID
# with SLACK_CLIENT_SECRET make it set up an OAuth flow of its own, with files for stores.
BOLT_READS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_SCOPES",
    "SLACK_USER_SCOPES",
    "SLACK_REDIRECT_URI",
)


def load_settings(kind: type[S]) -> S:
    """Settings from the environment, which then no longer holds the Slack secrets.

    From here on the settings are the only source: Bolt gets what it needs as arguments, and
    neither Bolt nor a tool module (nor a process a tool starts) finds the secrets in
    `os.environ`.
    """
    try:
        settings = kind()  # the environment fills the required fields
    except ValidationError as exc:
        print("\n".join(_settings_errors(exc)), file=sys.stderr)
        raise SystemExit(2) from None
    for name in BOLT_READS:
        os.environ.pop(name, None)
    return settings


async def migrate(settings: Settings) -> int:
    db = Database(settings.database_url)
    try:
        await schema.upgrade(db)
        log.info("database at revision %s", await schema.current_revision(db))
    except (OSError, SQLAlchemyError) as exc:
        print(f"threadgate: migration failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
        await driver_threads_finished()
    return 0


async def reencrypt(settings: Settings) -> int:
    """One line per sealed column; after it, every key but the first can be dropped."""
    if settings.cipher is None:
        print(f"threadgate: reencrypt needs {SETTING} (the new key first)", file=sys.stderr)
        return 2
    db = Database(settings.database_url, cipher=settings.cipher)
    try:
        async for name, counts in sealed_columns.reencrypt(db):
            print(f"{name}: {counts}", flush=True)
    except DecryptionError as exc:
        print(f"threadgate: reencrypt stopped: {exc}", file=sys.stderr)
        return 1
    except (OSError, SQLAlchemyError) as exc:
        print(f"threadgate: reencrypt failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
        await driver_threads_finished()
    return 0


async def print_audit(settings: DatabaseSettings, argv: list[str]) -> int:
    options = audit_export.parser().parse_args(argv)
    db = Database(settings.database_url)
    try:
        written = await audit_export.write(
            db, sys.stdout, since=audit_export.cutoff(options.since), fmt=options.format
        )
        log.debug("printed %d audit entries", written)
    except (OSError, SQLAlchemyError) as exc:
        print(f"threadgate: audit failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
        await driver_threads_finished()
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


async def start_when_possible(threadgate: Threadgate, stop: asyncio.Event) -> bool:
    """Keep /healthz at 503 and retry while the database or Slack is not there yet.

    A token Slack refuses will not start working by itself: that ends start-up instead.
    """
    delay = 1.0
    while not stop.is_set():
        try:
            await threadgate.start()
            return True
        except DecryptionError as exc:
            log.error("%s: check THREADGATE_ENCRYPTION_KEY", exc)
            return False
        except ConfigError as exc:
            log.error("config %s", exc)
            return False
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if error in FATAL_SLACK_ERRORS:
                log.error("Slack refused the bot token (%s): check SLACK_BOT_TOKEN", error)
                return False
            log.warning("Slack is not reachable yet (%s); retrying in %.0fs", error, delay)
        except Exception as exc:
            log.warning("start-up failed (%s); retrying in %.0fs", _one_line(exc), delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 30.0)
    return False


async def connect_when_possible(
    threadgate: Threadgate, app_token: str, stop: asyncio.Event
) -> AsyncSocketModeHandler | None:
    """As `start_when_possible`, for the Socket Mode connection and its app-level token."""
    delay = 1.0
    while not stop.is_set():
        try:
            return await socket_mode.connect(threadgate, app_token)
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if error in socket_mode.REFUSED_APP_TOKEN:
                log.error("Slack refused the app-level token (%s): check SLACK_APP_TOKEN", error)
                return None
            log.warning("Socket Mode is not reachable yet (%s); retrying in %.0fs", error, delay)
        except Exception as exc:
            log.warning("Socket Mode failed (%s); retrying in %.0fs", _one_line(exc), delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 30.0)
    return None


async def serve(threadgate: Threadgate) -> int:
    settings = threadgate.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(
        build_web_app(threadgate, serve_events=not settings.socket_mode), access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", settings.port)  # noqa: S104  (a server must listen)
    await site.start()
    log.info("listening on port %d", settings.port)
    socket_handler = None
    started = False
    try:
        started = await start_when_possible(threadgate, stop)
        if not started:
            return 0 if stop.is_set() else 1
        # Start-up objects live as long as the process: keep full collections from walking them
        # (otherwise each costs a 170-300 ms pause in whichever request it lands on).
        gc.collect()
        gc.freeze()
        if settings.slack_app_token is not None:
            token = settings.slack_app_token.get_secret_value()
            socket_handler = await connect_when_possible(threadgate, token, stop)
            if socket_handler is None:
                return 0 if stop.is_set() else 1
            log.info("connected to Slack in Socket Mode")
        await stop.wait()
        log.info("stopping: finishing running work (up to %.0fs)", settings.drain_timeout)
    finally:
        if socket_handler is not None:
            await socket_handler.close_async()  # type: ignore[no-untyped-call]
        finished = await threadgate.stop()
        await runner.cleanup()
        await driver_threads_finished()
        if started:
            log.info("stopped%s", "" if finished else " (unfinished work was recorded)")
    return 0


def check_config(argv: list[str]) -> int:
    """Needs no Slack settings and no database: only the file, named or as configured."""
    path = Path(argv[0]) if argv else ConfigLocation().threadgate_config
    try:
        report = config_report(path)
    except ConfigError as exc:
        print(f"threadgate: config {exc}", file=sys.stderr)
        return 2
    print("\n".join(report))
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command == "audit":
        database_settings = load_settings(DatabaseSettings)
        configure_logging(database_settings)
        return asyncio.run(print_audit(database_settings, argv[1:]))
    if command == "check-config" and len(argv) <= 2:
        return check_config(argv[1:])
    if command not in ("serve", "migrate", "reencrypt", "console") or len(argv) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    if command == "console":
        return console.run(load_settings(ConsoleSettings))
    settings = load_settings(Settings)
    configure_logging(settings)
    if command == "migrate":
        return asyncio.run(migrate(settings))
    if command == "reencrypt":
        return asyncio.run(reencrypt(settings))
    try:
        threadgate = build_app(settings)
    except ConfigError as exc:
        print(f"threadgate: config {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(threadgate))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
