# The two commands of the README. Each sets up .venv by itself (idempotent; see scripts/setup.sh).
PY := .venv/bin/python

.PHONY: setup demo test test-fast lint three-tier bench bench-public workload-rag workload-agent

setup:
	@bash scripts/setup.sh

## demo: run the cascade over the bundled world-facts test split with the embedded models
demo: setup
	$(PY) -m cascade_core.cli.demo

## workload-rag: LangChain retriever chain + LlamaIndex query engine over countryinfo, real models (docs/workloads.md)
workload-rag: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.studies.workload_rag

## workload-agent: LangChain create_agent + LlamaIndex FunctionAgent with two tools, real models (docs/workloads.md)
workload-agent: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.studies.workload_agent

## test: the full test suite (includes the slow tests that load the real embedded models)
test: setup
	$(PY) -m pytest

## test-fast: everything except the tests that load the real embedded models
test-fast: setup
	$(PY) -m pytest -m "not slow"

## bench: the speed benchmarks in benchmarks/speed/ with the embedded SmolLM2-135M (ratios measured in one run; see docs/performance.md)
bench: setup
	@for b in overhead adapters early_exit signals batch server_batch memory; do \
		echo "== python -m benchmarks.speed.bench_$$b"; $(PY) -m benchmarks.speed.bench_$$b --quiet || exit 1; echo; \
	done

lint: setup
	$(PY) -m ruff check shared langchain_cascade llamaindex_cascade tests examples
	$(PY) -m mypy

## three-tier: SmolLM2 -> Qwen-0.5B -> Qwen-1.5B vs the 2-tier cascade on world_facts (llama.cpp servers)
three-tier: setup
	$(PY) -m benchmarks.studies.three_tier --limit 120 --json docs/figures/three_tier.json

## bench-public: the eight BIG-bench tasks, every method and cascadeflow 1.2.0 on the same caches (docs/benchmarks.md)
## (~75 min on a 2-core CPU: the large tier on core 0, the small tiers, embeddings and the peer on core 1; resumable)
PUBLIC := --fit 100 --test 300 --threads 1
bench-public: setup
	taskset -c 0 $(PY) -m benchmarks.public.collect $(PUBLIC) --tiers qwen15 --quiet & \
	taskset -c 1 $(PY) -m benchmarks.public.collect $(PUBLIC) --tiers smollm2 qwen05 --quiet && \
	taskset -c 1 $(PY) -m benchmarks.public.embed $(PUBLIC) --quiet && \
	taskset -c 1 $(PY) -m benchmarks.public.peers $(PUBLIC) --quiet; wait
	$(PY) -m benchmarks.public.collect $(PUBLIC) --quiet
	$(PY) -m benchmarks.public.report $(PUBLIC)
