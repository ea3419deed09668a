# syntax=docker/dockerfile:1
# threadgate: `docker build -t threadgate .` then run with the settings of the README.

# --- build: dependencies from uv.lock only, into a virtual environment ---------------------
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
# The lock file alone decides what is installed (--locked fails if pyproject.toml disagrees).
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY bot ./bot
COPY storage ./storage

# --- run: the same slim Python, the environment and the code, no build tools ---------------
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin threadgate
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/bot ./bot
COPY --from=build /app/storage ./storage
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 PORT=3000
USER threadgate
EXPOSE 3000
# No curl in a slim image: Python asks /healthz, and any answer but 200 (503) fails.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]
CMD ["python", "-m", "bot"]
