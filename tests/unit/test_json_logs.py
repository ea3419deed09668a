"""LOG_FORMAT=json through configure_logging: one JSON object per line, with the ids bound
where the work started, and secrets redacted from the message and the traceback alike."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bot import log_context
from bot.log_redaction import REDACTED, configure_logging
from bot.settings import DatabaseSettings

SECRET = Fernet.generate_key().decode()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def settings(log_format: str) -> DatabaseSettings:
    return DatabaseSettings(_env_file=None, log_format=log_format, encryption_key=SecretStr(SECRET))


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_the_bound_ids_and_no_secret() -> None:
    stream = io.StringIO()
    configure_logging(settings("json"), stream=stream)
    log = logging.getLogger("threadgate.test")
    with log_context.bound(request_id="r1", team="T1"):
        log.info("outside a run")
        with log_context.bound(run_id="run-7", job_id=3, channel=None):
            log.warning("key %s in a message", SECRET)
            try:
                raise RuntimeError(f"failed with {SECRET}")
            except RuntimeError:
                log.exception("run failed")
    log.info("after")
    first, second, third, fourth = lines(stream)
    assert first["message"] == "outside a run"
    assert (first["request_id"], first["team"]) == ("r1", "T1")
    assert "run_id" not in first
    assert {"time", "level", "logger"} <= set(first)
    assert first["level"] == "INFO"
    assert first["logger"] == "threadgate.test"
    assert second["run_id"] == "run-7"
    assert second["job_id"] == "3"
    assert "channel" not in second
    assert second["message"] == f"key {REDACTED} in a message"
    assert third["run_id"] == "run-7"
    assert "RuntimeError" in str(third["exception"])
    assert "request_id" not in fourth
    assert SECRET not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_stay_as_they_were() -> None:
    stream = io.StringIO()
    configure_logging(settings("text"), stream=stream)
    with log_context.bound(run_id="run-7"):
        logging.getLogger("threadgate.test").info("plain %d", 1)
    [line] = stream.getvalue().splitlines()
    assert line.endswith(" INFO threadgate.test: plain 1")
    assert "run-7" not in line
