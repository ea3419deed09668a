"""Each way a model can fail is named for the thread; only the unexpected is an error."""

import httpx2 as httpx
import openai
import pytest
from agents.exceptions import ModelBehaviorError

from bot.agent.failures import describe, turn_limit_note

REQUEST = httpx.Request("POST", "http://model.test/v1/responses")


def _status(cls: type[openai.APIStatusError], code: int) -> openai.APIStatusError:
    return cls("no", response=httpx.Response(code, request=REQUEST), body=None)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (openai.APITimeoutError(request=REQUEST), "did not answer in time"),
        (TimeoutError(), "did not answer in time"),
        (_status(openai.BadRequestError, 400), "refused the request"),
        (_status(openai.PermissionDeniedError, 403), "refused the request"),
        (_status(openai.AuthenticationError, 401), "check the API key"),
        (_status(openai.InternalServerError, 500), "failed to answer"),
        (_status(openai.RateLimitError, 429), "failed to answer"),
        (openai.APIConnectionError(request=REQUEST), "could not be reached"),
        (ModelBehaviorError("bad tool call"), "failed to answer"),
    ],
)
def test_model_failures_are_named_and_expected(error: BaseException, said: str) -> None:
    failure = describe(error)
    assert said in failure.what
    assert failure.expected


def test_anything_else_is_unexpected() -> None:
    failure = describe(KeyError("x"))
    assert not failure.expected
    assert failure.what == "Sorry, I couldn't answer that."


def test_the_turn_limit_note_names_the_limit() -> None:
    assert "stopped after 3 steps, the limit set for this agent" in turn_limit_note(3)
    assert "after 1 step," in turn_limit_note(1)
