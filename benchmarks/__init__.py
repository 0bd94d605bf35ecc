"""Benchmarks and studies of llm-cascade (not part of the installed package); see benchmarks/README.md.

Scripts run as modules from the repository root (``python -m benchmarks.speed.bench_overhead``), so
this runs before any of them imports torch, whatever their import order.
"""

import os

# Before torch starts OpenMP: idle OpenMP threads sleep instead of spinning. With the default
# (active) policy on a shared, oversubscribed 2-core machine, a 2-thread torch forward in the main
# thread measured 6-8x slower than the same forward in a worker thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
