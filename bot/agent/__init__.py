"""The agent: its tools, and starting or resuming its runs on a thread's history."""
