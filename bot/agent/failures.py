"""What went wrong in a run, in words for the thread, and whether it deserves an ERROR line.

The model's own failures (it timed out, refused the request, or failed) are part of running an
agent: the thread is told which one it was, with a reference id, and the log says so at WARNING.
Only what nobody expected is an ERROR with its traceback.
"""

import logging
from dataclasses import dataclass

import openai
from agents.exceptions import ModelBehaviorError

from storage.models import new_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    what: str
    expected: bool


def describe(exc: BaseException) -> Failure:
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return Failure("The model did not answer in time.", expected=True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("The model server could not be reached.", expected=True)
    if isinstance(
        exc,
        openai.BadRequestError
        | openai.PermissionDeniedError
        | openai.UnprocessableEntityError
        | openai.ContentFilterFinishReasonError,
    ):
        return Failure("The model refused the request.", expected=True)
    if isinstance(exc, openai.AuthenticationError | openai.NotFoundError):
        return Failure(
            "The model could not be used: check the API key and model name.", expected=True
        )
    if isinstance(exc, openai.APIError | ModelBehaviorError):
        return Failure("The model failed to answer.", expected=True)
    return Failure("Sorry, I couldn't answer that.", expected=False)


def turn_limit_note(max_turns: int) -> str:
    steps = "step" if max_turns == 1 else "steps"
    return (
        f":octagonal_sign: I stopped after {max_turns} {steps}, the limit set for this agent. "
        "What I did so far is kept: reply “go on” to continue."
    )


def logged_stop(run_id: str, cause: str, *, expected: bool) -> str:
    """Log a run that stopped and return the reference id the people are given. Only the
    unexpected is an ERROR, with its traceback (call it from the handler)."""
    ref = new_ref()
    if expected:
        log.warning("run %s stopped: %s (ref %s)", run_id, cause, ref)
    else:
        log.error("run %s failed: %s (ref %s)", run_id, cause, ref, exc_info=True)
    return ref
