"""A fast stand-in for the openai client's request-body transform of model calls.

Before it sends `responses.create` or `chat.completions.create`, openai-python passes the body
to `async_maybe_transform`, which walks every input item against every member of the large
input-item Union, on the event loop: about 0.8 ms of CPU per history item, so a request that
carries 100 history items blocks every Slack thread of the bot for about 80 ms. The walk exists
to apply `PropertyInfo` aliases and formats, and the trees of the four create-body types carry
none, so it only drops omitted values, dumps pydantic models and makes lists of iterables. The
same cost is known upstream: openai/openai-python#3616 (the transform's CPU on large bodies,
doubled where `parse()` walks the whole params Union) and anthropics/anthropic-sdk-python#1247
(skip the no-op walk for types without `PropertyInfo`).

`install()` puts a wrapper in place of `maybe_transform` and `async_maybe_transform` in the two
resource modules. For a body type whose tree was checked at install time to hold no alias,
format or discriminator, the wrapper walks the data alone and the request carries the same
JSON as with the original (tests/unit/test_openai_request_transform.py compares them); every
other type still goes to the original. When openai moves any of this,
`install()` changes nothing and the client keeps its own, slower, path.

The tree check cannot see a new rule in openai's walk itself. So before it puts anything in
place, `install()` runs both transforms on a realistic create body of each API and keeps
openai's own when the outputs differ, saying so in a WARNING: an upgrade of openai may make the
bot slower, never make it send a different body. pyproject.toml bounds openai below its next
minor release too, because this module reads `openai._utils`, which a minor release may move.
"""

import functools
import importlib
import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, ForwardRef, Literal, get_args, get_origin

import openai
import pydantic
from openai import NotGiven, Omit
from typing_extensions import TypeAliasType, get_type_hints, is_typeddict

from bot.agent.openai_transform_check import first_difference

logger = logging.getLogger(__name__)

MaybeTransform = Callable[[object, object], Any]
AsyncMaybeTransform = Callable[[object, object], Awaitable[Any]]
Walk = Callable[[object], object]

RESOURCE_MODULES = (
    "openai.resources.responses.responses",
    "openai.resources.chat.completions.completions",
)
BODY_TYPES = (
    ("openai.types.responses.response_create_params", "ResponseCreateParamsNonStreaming"),
    ("openai.types.responses.response_create_params", "ResponseCreateParamsStreaming"),
    ("openai.types.chat.completion_create_params", "CompletionCreateParamsNonStreaming"),
    ("openai.types.chat.completion_create_params", "CompletionCreateParamsStreaming"),
)

ALIAS_TYPES: tuple[type, ...] = (TypeAliasType, getattr(typing, "TypeAliasType", TypeAliasType))


@functools.cache
def needs_transform(type_: object) -> bool:
    """Whether openai's transform could change data of this type beyond a plain data walk.

    True when the type tree holds a `PropertyInfo` with an alias, format or discriminator, or
    when part of it cannot be read (an unresolved forward reference).
    """
    try:
        from openai._utils import PropertyInfo
    except ImportError:
        return True

    seen: set[int] = set()
    visited: list[object] = []  # keeps every seen id alive, so no id is reused mid-walk
    pending: list[object] = [type_]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        visited.append(current)
        if isinstance(current, str | ForwardRef):
            return True
        if isinstance(current, ALIAS_TYPES):
            pending.append(getattr(current, "__value__", None))
            continue
        if is_typeddict(current):
            try:
                hints = get_type_hints(current, include_extras=True)
            except (NameError, TypeError):
                return True
            pending.extend(hints.values())
            continue
        if get_origin(current) is Literal:
            continue
        args = get_args(current)
        metadata = getattr(current, "__metadata__", ())
        for info in metadata:
            if isinstance(info, PropertyInfo) and (
                info.alias is not None or info.format is not None or info.discriminator is not None
            ):
                return True
        pending.extend(args[:1] if metadata else args)
    return False


def plain_transform(data: object) -> object:
    """openai's transform for a type tree without `PropertyInfo`, reading only the data."""
    if data is None or isinstance(data, str | int | float):
        return data
    if isinstance(data, Mapping):
        return {
            key: plain_transform(value)
            for key, value in data.items()
            if not isinstance(value, NotGiven | Omit)
        }
    if isinstance(data, pydantic.BaseModel):
        return data.model_dump(
            mode="json", exclude_unset=True, exclude=getattr(data, "__api_exclude__", None)
        )
    if isinstance(data, Iterable):
        return [plain_transform(item) for item in data]
    return data


def _verified(candidates: Iterable[object]) -> tuple[object, ...]:
    return tuple(type_ for type_ in candidates if not needs_transform(type_))


class FastMaybeTransform:
    """`maybe_transform` that takes the plain walk for the verified body types."""

    def __init__(
        self, original: MaybeTransform, candidates: Iterable[object], walk: Walk = plain_transform
    ) -> None:
        self.original = original
        self.fast_types = _verified(candidates)
        self.walk = walk

    def __call__(self, data: object, expected_type: object) -> Any:
        if any(expected_type is type_ for type_ in self.fast_types):
            return self.walk(data)
        return self.original(data, expected_type)


class AsyncFastMaybeTransform:
    """`async_maybe_transform` that takes the plain walk for the verified body types."""

    def __init__(
        self,
        original: AsyncMaybeTransform,
        candidates: Iterable[object],
        walk: Walk = plain_transform,
    ) -> None:
        self.original = original
        self.fast_types = _verified(candidates)
        self.walk = walk

    async def __call__(self, data: object, expected_type: object) -> Any:
        if any(expected_type is type_ for type_ in self.fast_types):
            return self.walk(data)
        return await self.original(data, expected_type)


def _resolve() -> tuple[list[ModuleType], tuple[object, ...]] | None:
    try:
        modules = [importlib.import_module(name) for name in RESOURCE_MODULES]
        body_types = tuple(
            getattr(importlib.import_module(module), name) for module, name in BODY_TYPES
        )
    except (ImportError, AttributeError) as exc:
        logger.debug("openai request transform left as is: %s", exc)
        return None
    for module in modules:
        for name in ("maybe_transform", "async_maybe_transform"):
            if not callable(module.__dict__.get(name)):
                logger.debug("openai request transform left as is: no %s.%s", module.__name__, name)
                return None
    return modules, body_types


def _original(transform: object) -> Any:
    return (
        transform.original
        if isinstance(transform, FastMaybeTransform | AsyncFastMaybeTransform)
        else transform
    )


def install(*, walk: Walk = plain_transform) -> bool:
    """Put the fast transform in place (a second call replaces it), if it gives what openai's gives.

    False when openai no longer fits or the self-check finds a difference: then openai's own
    transform is (back) in place.
    """
    resolved = _resolve()
    if resolved is None:
        return False
    modules, body_types = resolved
    for type_ in body_types:
        if needs_transform(type_):
            logger.debug("openai request transform keeps the original for %r", type_)
    if not _verified(body_types):
        return False
    wrappers = []
    for module in modules:
        namespace = module.__dict__
        fast = FastMaybeTransform(_original(namespace["maybe_transform"]), body_types, walk)
        fast_async = AsyncFastMaybeTransform(
            _original(namespace["async_maybe_transform"]), body_types, walk
        )
        differing = first_difference(fast, fast.original, zip(BODY_TYPES, body_types, strict=True))
        if differing is not None:
            logger.warning(
                "openai request transform: the fast path would change the %s body of openai "
                "%s, so openai's own transform stays in place (correct, but slower)",
                differing,
                openai.__version__,
            )
            _restore(modules)
            return False
        wrappers.append((namespace, fast, fast_async))
    for namespace, fast, fast_async in wrappers:
        namespace["maybe_transform"] = fast
        namespace["async_maybe_transform"] = fast_async
    return True


def _restore(modules: Iterable[ModuleType]) -> None:
    for module in modules:
        namespace = module.__dict__
        for name in ("maybe_transform", "async_maybe_transform"):
            namespace[name] = _original(namespace[name])
