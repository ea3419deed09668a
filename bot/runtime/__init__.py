"""The thread runtime: incoming work, the per-thread queue and worker, sweeps, recovery."""
