"""Quality studies: deferral signals, learned rules, cost curves and workloads on the embedded models."""
