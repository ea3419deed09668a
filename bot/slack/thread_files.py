"""Files people attached in a thread, as the model reads them: text as text, images as images.

A file is named by a message of the thread; everything else about it (name, type, size, where
it lives) comes from `files.info`, and its bytes from its `url_private_download` with the bot
token. The token goes only to Slack: the address must be on files.slack.com or on the host the
Web API is configured at. Reading stops one byte past the limit, and a file that cannot be read
(too big, gone, refused, slow, not text) becomes a one-line note to the model instead, never a
failed run. What a file says is untrusted and never logged.
"""

import asyncio
import base64
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.workspaces import bearer

log = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Text that is not `text/*` by its type; Slack labels much source code this way.
TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-sh",
        "application/x-python",
        "application/sql",
        "application/csv",
        "application/x-httpd-php",
    }
)
SLACK_FILES_HOST = "files.slack.com"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME_LENGTH = 120


@dataclass(frozen=True)
class FileLimits:
    max_file_bytes: int
    max_image_bytes: int
    accepts_images: bool
    timeout: float = 10.0  # seconds for files.info and the download together


class _NotRead(Exception):
    """Why a file stays unread; the message completes a note the model reads."""


def input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def kb(size: int) -> str:
    return f"{math.ceil(size / 1000)} kB"


def file_name(file: Mapping[str, Any]) -> str:
    """A name fit for one line of a note: a file's name is whatever its uploader typed."""
    raw = file.get("name") or file.get("title") or file.get("id") or "unnamed"
    name = re.sub(r"[\x00-\x1f\x7f\"]+", " ", str(raw)).strip() or "unnamed"
    return name if len(name) <= _NAME_LENGTH else name[:_NAME_LENGTH] + "…"


class FileReader:
    def __init__(self, client: AsyncWebClient, limits: FileLimits) -> None:
        self.client = client
        self.limits = limits

    async def parts(self, attached: Mapping[str, Any], *, author: str) -> list[dict[str, Any]]:
        """The content parts for one file a message carries: its text, its image, or a note
        that says why the model does not see it."""
        name = file_name(attached)
        file_id = attached.get("id")
        if not isinstance(file_id, str) or not file_id:
            return [input_text(f'File "{name}" from <@{author}> not read: it has no id.')]
        try:
            async with asyncio.timeout(self.limits.timeout):
                file = await self._info(file_id)
                name = file_name(file)
                return await self._read(file, name, author)
        except _NotRead as exc:
            log.debug("file %s not read", file_id)
            return [input_text(f'File "{name}" from <@{author}> not read: {exc}.')]
        except TimeoutError:
            log.info("file %s not read: Slack took longer than %ss", file_id, self.limits.timeout)
            return [input_text(f'File "{name}" from <@{author}> not read: Slack was too slow.')]

    async def _info(self, file_id: str) -> Mapping[str, Any]:
        try:
            response = await self.client.files_info(file=file_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            log.info("files.info for %s failed: %s", file_id, error)
            raise _NotRead(f"Slack refused it ({error})") from None
        except (SlackClientError, aiohttp.ClientError, OSError) as exc:
            log.info("files.info for %s failed: %s", file_id, type(exc).__name__)
            raise _NotRead("Slack could not be reached") from None
        file = response.get("file")
        if not isinstance(file, dict):
            raise _NotRead("Slack did not describe it")
        return file

    async def _read(self, file: Mapping[str, Any], name: str, author: str) -> list[dict[str, Any]]:
        mimetype = str(file.get("mimetype") or "").split(";")[0].strip().lower()
        size = file.get("size")
        if mimetype in IMAGE_TYPES:
            if not self.limits.accepts_images:
                return [
                    input_text(
                        f'Image "{name}" from <@{author}> not shown to the model: '
                        "it does not take images."
                    )
                ]
            data = await self._download(file, size, self.limits.max_image_bytes)
            encoded = base64.b64encode(data).decode("ascii")
            return [
                input_text(f'<@{author}> attached the image "{name}":'),
                {
                    "type": "input_image",
                    "image_url": f"data:{mimetype};base64,{encoded}",
                    "detail": "auto",
                },
            ]
        if not (
            mimetype.startswith("text/") or mimetype in TEXT_TYPES or file.get("mode") == "snippet"
        ):
            raise _NotRead(f"only text files and images are read, and it is {mimetype or 'binary'}")
        data = await self._download(file, size, self.limits.max_file_bytes)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _NotRead("it is not UTF-8 text") from None
        return [
            input_text(
                f'<@{author}> attached the file "{name}" ({mimetype or "text"}):\n'
                f"----- begin {name} -----\n{text}\n----- end {name} -----"
            )
        ]

    async def _download(self, file: Mapping[str, Any], size: object, limit: int) -> bytes:
        if isinstance(size, int) and size > limit:
            raise _NotRead(f"{kb(size)}, larger than the limit of {kb(limit)}")
        url = file.get("url_private_download") or file.get("url_private")
        if not isinstance(url, str) or not self.is_slack_url(url):
            raise _NotRead("it is not stored on Slack")
        session = self.client.session
        own = session is None or session.closed
        if own:
            session = aiohttp.ClientSession()
        assert session is not None
        try:
            return await self._get(session, url, limit)
        except (aiohttp.ClientError, OSError) as exc:
            log.info("download of file %s failed: %s", file.get("id"), type(exc).__name__)
            raise _NotRead("it could not be downloaded") from None
        finally:
            if own:
                await session.close()

    async def _get(self, session: aiohttp.ClientSession, url: str, limit: int) -> bytes:
        """Never more than `limit` + 1 bytes are read, whatever the server says or sends.

        Redirects are not followed: Slack redirects a request it does not accept to its
        sign-in page, and the token must not travel anywhere else."""
        headers = {"Authorization": f"Bearer {await bearer(self.client) or ''}"}
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status != 200:
                log.info("download of a file answered HTTP %s", response.status)
                raise _NotRead(f"Slack refused it (HTTP {response.status})")
            length = response.content_length
            if length is not None and length > limit:
                raise _NotRead(f"{kb(length)}, larger than the limit of {kb(limit)}")
            data = bytearray()
            while len(data) <= limit:
                chunk = await response.content.read(limit + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            if len(data) > limit:
                raise _NotRead(f"larger than the limit of {kb(limit)}")
            return bytes(data)

    def is_slack_url(self, url: str) -> bool:
        """files.slack.com over HTTPS, or the scheme, host and port of the Web API's URL."""
        try:
            target = urlsplit(url)
            port = target.port or _DEFAULT_PORTS.get(target.scheme)
            api = urlsplit(self.client.base_url)
            api_port = api.port or _DEFAULT_PORTS.get(api.scheme)
        except ValueError:
            return False
        if target.username is not None or target.password is not None or not target.hostname:
            return False
        if target.scheme == "https" and target.hostname == SLACK_FILES_HOST and port == 443:
            return True
        return (target.scheme, target.hostname, port) == (api.scheme, api.hostname, api_port)
