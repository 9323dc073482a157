# Circuit School. Every target creates .venv and installs requirements-dev.txt (the runtime pins of requirements.txt
# plus the development tools) on first use; later runs install nothing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVICE ?=
PYTEST_ARGS ?=
JOBS ?= auto
DEVICE_FLAG := $(if $(DEVICE),--device $(DEVICE),)

export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE = 1

SUBMISSIONS ?= examples/submissions
OUT ?=

.PHONY: setup test build notebooks grade examples bench models clean

setup: $(STAMP)

# pip compiles every installed module on one core; compileall does the same on every core (47 s instead of 60 s here),
# leaving out the packages' own test suites (nothing imports them). A module it cannot compile (a package's own
# templates) is not an error: Python reads that one from source.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --no-compile -r requirements-dev.txt
	-@$(PY) -m compileall -q -j 0 -x '/tests/' \
		"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null
	@touch $(STAMP)

## Run every checker on the reference solutions, plus the tooling tests (make test DEVICE=cuda), on every core
## (pytest-xdist; JOBS=1 for one process).
test: $(STAMP)
	$(PY) -m pytest tests -n $(JOBS) --dist worksteal $(DEVICE_FLAG) $(PYTEST_ARGS)

## Regenerate learner notebooks, solutions notebooks and solutions/ modules from chapters/src, and the quick
## reference (notebook + one-page HTML) from reference/src.
build: $(STAMP)
	$(PY) -m utils.build
	$(PY) -m utils.build_reference

## The curriculum's main job: execute every chapter's solutions notebook headless and report.
notebooks: $(STAMP)
	$(PY) -m utils.run_notebooks $(DEVICE_FLAG)

## Grade every notebook below SUBMISSIONS (default: the shipped examples) into a gradebook.
grade: $(STAMP)
	$(PY) -m utils.grading $(SUBMISSIONS) $(if $(OUT),--out $(OUT),) $(DEVICE_FLAG)

## Rebuild the example submissions (and their expected statuses) from the chapter-0 notebook.
examples: $(STAMP)
	$(PY) -m examples.make_submissions

## Benchmarks (bench/*.json): grading a class of complete submissions of every chapter vs top-to-bottom
## execution; the same class on 1 and 2 jobs, without the sandbox, as shards, with the journal; check-cell latency
## and failing checks; the cost of pristine state per learner call; the batched patching engine; attribution patching.
bench: $(STAMP)
	$(PY) -m bench.bench_grading
	$(PY) -m bench.bench_grading_jobs
	$(PY) -m bench.bench_check_latency
	$(PY) -m bench.bench_failing_checks
	$(PY) -m bench.bench_isolation
	$(PY) -m bench.bench_patching
	$(PY) -m bench.bench_attribution

## Retrain every shipped model from scratch (seeded; CUDA when available; under 2 h on a 2-core CPU): attn2l and
## mlp4l (its 30M-token run, then its IOI phase) side by side, one core each; then the SAEs on mlp4l. Each writes
## its folder's model card.
models: $(STAMP)
	$(PY) -m training.train_model --config attn2l --seed 0 --device auto & attn2l=$$!; \
	$(PY) -m training.train_model --config mlp4l --seed 2 --device auto && wait $$attn2l
	$(PY) -m training.train_sae --model mlp4l --hook blocks.1.hook_resid_post --seed 0 --device auto
	$(PY) -m training.train_sae --model mlp4l --hook name-movers --seed 0 --device auto

clean:
	rm -rf $(VENV) reports .pytest_cache
