"""`python -m bot console`: the agent, its tools, policy and storage, in a terminal."""
