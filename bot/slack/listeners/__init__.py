"""Thin Bolt adapters, one per Slack surface: parse, ack, hand over to one flow function."""
