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
"""

import functools
import importlib
import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, ForwardRef, Literal, get_args, get_origin

import pydantic
from openai import NotGiven, Omit
from typing_extensions import TypeAliasType, get_type_hints, is_typeddict

logger = logging.getLogger(__name__)

MaybeTransform = Callable[[object, object], Any]
AsyncMaybeTransform = Callable[[object, object], Awaitable[Any]]

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

    def __init__(self, original: MaybeTransform, candidates: Iterable[object]) -> None:
        self.original = original
        self.fast_types = _verified(candidates)

    def __call__(self, data: object, expected_type: object) -> Any:
        if any(expected_type is type_ for type_ in self.fast_types):
            return plain_transform(data)
        return self.original(data, expected_type)


class AsyncFastMaybeTransform:
    """`async_maybe_transform` that takes the plain walk for the verified body types."""

    def __init__(self, original: AsyncMaybeTransform, candidates: Iterable[object]) -> None:
        self.original = original
        self.fast_types = _verified(candidates)

    async def __call__(self, data: object, expected_type: object) -> Any:
        if any(expected_type is type_ for type_ in self.fast_types):
            return plain_transform(data)
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


def install() -> bool:
    """Put the fast transform in place once; False when openai no longer fits, changing nothing."""
    resolved = _resolve()
    if resolved is None:
        return False
    modules, body_types = resolved
    for type_ in body_types:
        if needs_transform(type_):
            logger.debug("openai request transform keeps the original for %r", type_)
    if not _verified(body_types):
        return False
    for module in modules:
        namespace = module.__dict__
        if not isinstance(namespace["maybe_transform"], FastMaybeTransform):
            namespace["maybe_transform"] = FastMaybeTransform(
                namespace["maybe_transform"], body_types
            )
        if not isinstance(namespace["async_maybe_transform"], AsyncFastMaybeTransform):
            namespace["async_maybe_transform"] = AsyncFastMaybeTransform(
                namespace["async_maybe_transform"], body_types
            )
    return True
