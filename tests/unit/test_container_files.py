"""The Dockerfile and compose.yaml, checked without a container runtime: dependencies come
from the lock file, the final image runs `python -m bot` as a non-root user with a health
check, and compose names every setting the README's Settings table calls required."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "apt-get", "uv ")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            split.append([])
        if split:
            split[-1].append(instruction)
    return split


def required_settings(readme: str) -> list[str]:
    """Settings whose default column in the README's Settings table starts with `required`,
    or `one workspace: required`: compose starts the one-workspace trial."""
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names = []
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1].removeprefix("one workspace: ").startswith("required"):
            names.append(cells[0].strip("`"))
    return names


def test_the_dependency_step_installs_from_the_lock_file_only() -> None:
    build = stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))[0]
    [sync] = [args for word, args in build if word == "RUN" and "uv sync" in args]
    assert "--locked" in sync or "--frozen" in sync
    assert "--no-dev" in sync
    copied_before = []
    for word, args in build:
        if word == "RUN" and args == sync:
            break
        if word == "COPY":
            copied_before.extend(args.split()[:-1])
    assert "uv.lock" in copied_before


def test_the_final_image_is_slim_non_root_and_serves_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    all_stages = stages(text)
    assert len(all_stages) >= 2, "multi-stage: build apart from the image that runs"
    final = all_stages[-1]
    assert "slim" in final[0][1]
    words = dict(final)
    users = [args for word, args in final if word == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    for word, args in final:
        if word == "RUN":
            assert not any(tool in args for tool in BUILD_TOOLS), args
    assert json.loads(words["CMD"]) == ["python", "-m", "bot"]
    assert "/healthz" in words["HEALTHCHECK"]


def test_compose_names_every_required_setting_and_waits_for_postgres() -> None:
    required = required_settings((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "SLACK_BOT_TOKEN" in required  # the README table was read
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
    services = compose["services"]
    bot = services["threadgate"]
    assert set(required) <= set(bot["environment"])
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    [(database, condition)] = bot["depends_on"].items()
    assert condition == {"condition": "service_healthy"}
    assert "postgres" in services[database]["image"]
    assert "pg_isready" in " ".join(services[database]["healthcheck"]["test"])
