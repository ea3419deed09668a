"""The Slack side: the HTTP endpoint, listeners by surface, and what the bot posts."""
