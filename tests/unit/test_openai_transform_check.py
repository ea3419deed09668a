"""The start-up self-check keeps the fast transform out whenever it would change a request.

A new openai can change what its own transform does without touching the types the tree check
reads; then the bot must fall back to openai's transform and say so, not send another body.
"""

import logging
from collections.abc import Mapping

import openai._utils
import pydantic
import pytest
from openai.resources.chat.completions import completions as chat_module
from openai.resources.responses import responses as responses_module
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params

from bot.agent.openai_request_transform import (
    BODY_TYPES,
    AsyncFastMaybeTransform,
    FastMaybeTransform,
    install,
    plain_transform,
)
from bot.agent.openai_transform_check import first_difference, same_output, sample_body

RESPONSES_BODY_TYPES = (
    response_create_params.ResponseCreateParamsNonStreaming,
    response_create_params.ResponseCreateParamsStreaming,
)
ALL_BODY_TYPES = (
    *RESPONSES_BODY_TYPES,
    completion_create_params.CompletionCreateParamsNonStreaming,
    completion_create_params.CompletionCreateParamsStreaming,
)
NAMED_BODY_TYPES = list(zip(BODY_TYPES, ALL_BODY_TYPES, strict=True))


def models_left_as_models(data: object) -> object:
    """A walk that passes pydantic models on undumped, as a changed openai might need."""
    if isinstance(data, pydantic.BaseModel):
        return data
    if isinstance(data, Mapping):
        return {key: models_left_as_models(value) for key, value in data.items()}
    return plain_transform(data)


@pytest.mark.parametrize(("name", "body_type"), NAMED_BODY_TYPES, ids=[n for _, n in BODY_TYPES])
def test_the_installed_openai_passes_the_self_check(
    name: tuple[str, str], body_type: object
) -> None:
    original = openai._utils.maybe_transform
    fast = FastMaybeTransform(original, [body_type])

    assert fast.fast_types == (body_type,)
    assert same_output(fast, original, sample_body(name[1]), body_type)


def test_the_samples_carry_history_omitted_values_and_a_model() -> None:
    sent = openai._utils.maybe_transform(
        sample_body("ResponseCreateParamsNonStreaming"), RESPONSES_BODY_TYPES[0]
    )

    assert isinstance(sent, dict)
    kinds = [item.get("type", "message") for item in sent["input"]]
    assert {"message", "reasoning", "function_call", "function_call_output"} <= set(kinds)
    assert {"temperature", "parallel_tool_calls", "stream"}.isdisjoint(sent)
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}


def test_a_walk_that_changes_the_body_is_reported_with_the_body_type() -> None:
    original = openai._utils.maybe_transform
    changed = FastMaybeTransform(original, ALL_BODY_TYPES, walk=models_left_as_models)

    assert (
        first_difference(FastMaybeTransform(original, ALL_BODY_TYPES), original, NAMED_BODY_TYPES)
        is None
    )
    assert first_difference(changed, original, NAMED_BODY_TYPES) == (
        "openai.types.responses.response_create_params.ResponseCreateParamsNonStreaming"
    )


def test_install_keeps_openais_transform_and_warns_when_the_self_check_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert install() is True

    with caplog.at_level(logging.WARNING, logger="bot.agent.openai_request_transform"):
        assert install(walk=models_left_as_models) is False

    for module in (responses_module, chat_module):
        assert vars(module)["maybe_transform"] is openai._utils.maybe_transform
        assert vars(module)["async_maybe_transform"] is openai._utils.async_maybe_transform
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert "ResponseCreateParamsNonStreaming" in warning.getMessage()
    assert openai.__version__ in warning.getMessage()

    assert install() is True
    assert isinstance(vars(responses_module)["async_maybe_transform"], AsyncFastMaybeTransform)


def test_a_passing_self_check_installs_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="bot.agent.openai_request_transform"):
        assert install() is True

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
