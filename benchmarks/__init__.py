"""threadgate's latency and memory benchmark: `uv run python -m benchmarks`, docs/benchmarks.md.

The real bot is driven over HTTP with signed requests against the test fakes (Slack Web API and
model server, both answering at once), next to a least-work Bolt app on the same fakes, so the
difference between the two is threadgate's own overhead.
"""
