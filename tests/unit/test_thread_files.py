"""The bot token goes only to Slack: which file addresses count as Slack's."""

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.thread_files import FileLimits, FileReader, file_name

LIMITS = FileLimits(max_file_bytes=100, max_image_bytes=100, accepts_images=True)


def reader(base_url: str) -> FileReader:
    return FileReader(AsyncWebClient(token="xoxb-t", base_url=base_url), LIMITS)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/download/a.txt", True),
        ("https://files.slack.com:443/files-pri/T1-F1/download/a.txt", True),
        ("https://slack.com/files-pri/T1-F1/download/a.txt", True),
        ("http://files.slack.com/files-pri/T1-F1/download/a.txt", False),
        ("https://files.slack.com:8443/files-pri/T1-F1/download/a.txt", False),
        ("https://files.slack.com.evil.example/files-pri/T1-F1/a.txt", False),
        ("https://evil.example/files-pri/T1-F1/download/a.txt", False),
        ("https://files.slack.com@evil.example/a.txt", False),
        ("https://user:pw@files.slack.com/a.txt", False),
        ("https://drive.google.com/file/d/1", False),
        ("file:///etc/passwd", False),
        ("https://[::1/a.txt", False),
        ("", False),
    ],
)
def test_only_slack_file_addresses_are_fetched(url: str, allowed: bool) -> None:
    assert reader("https://slack.com/api/").is_slack_url(url) is allowed


def test_the_configured_web_api_host_counts_with_its_scheme_and_port() -> None:
    fake = reader("http://127.0.0.1:4321/api/")
    assert fake.is_slack_url("http://127.0.0.1:4321/files-pri/T1-F1/download/a.txt")
    assert not fake.is_slack_url("http://127.0.0.1:4322/files-pri/T1-F1/download/a.txt")
    assert not fake.is_slack_url("https://127.0.0.1:4321/files-pri/T1-F1/download/a.txt")
    assert not fake.is_slack_url("http://localhost:4321/files-pri/T1-F1/download/a.txt")


def test_a_file_name_fits_on_one_line_of_a_note() -> None:
    assert file_name({"name": 'a"b\nc\x00d.txt'}) == "a b c d.txt"
    assert file_name({"id": "F1"}) == "F1"
    assert len(file_name({"name": "x" * 500})) == 121
