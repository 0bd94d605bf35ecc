"""Micro-benchmarks: speed and memory ratios of the engine, adapters and signals, measured in one run."""
