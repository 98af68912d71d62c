# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python has no wheel on PyPI: it compiles once (about 8 minutes) into this wheelhouse,
# outside the repository, and every later install (a fresh clone, CI) reuses the built wheel.
WHEELHOUSE ?= $(HOME)/.cache/thoughtgraph/wheels
LLAMA_CPP_VERSION := 0.3.36
# A portable AVX2 build. The default native build turns on llama.cpp's AMX kernels on CPUs that
# advertise AMX, and those crash (SIGSEGV in ggml_backend_amx_mul_mat) on our virtual machines.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
DEMO_QUESTION := Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: install system-deps demo test test-fast lint bench mutation clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, from the CPU wheel on local disk; otherwise a dependency pulls several GB of CUDA torch
	$(BIN)/python -m pip install --quiet torch==2.13.0
	ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --no-cache-dir --no-deps \
		llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEELHOUSE)
	$(BIN)/python -m pip install --quiet --find-links $(WHEELHOUSE) --only-binary llama-cpp-python -e '.[dev]'
	touch $@

# Debian's chromium renders the HTML thought-graph traces in the tests.
system-deps:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)

demo: install
	$(BIN)/thoughtgraph solve "$(DEMO_QUESTION)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install system-deps lint
	$(BIN)/python -m pytest -ra --durations=10

# The edit loop: the unit tests only (no real engine, server, browser or subprocess), after `make install`.
test-fast:
	$(BIN)/python -m pytest -q -m "not integration" --durations=5

bench: install
	$(BIN)/python bench/backends.py
	$(BIN)/python bench/evals.py
	$(BIN)/python bench/methods.py
	$(BIN)/python bench/batched_llamacpp.py

# Mutation testing of reasoning/ and agents/runtime/ against the unit tests named in pyproject.toml
# ([tool.mutmut]); about 20 minutes on 2 cores. The score goes into the README.
mutation: install
	$(BIN)/python -m pip install --quiet "mutmut>=3.3,<4"
	# mutmut names mutants by file path: it runs in a copy laid out as the installed package (thoughtgraph/reasoning/...)
	$(BIN)/python scripts/mutation_tree.py .mutation
	cd .mutation && $(abspath $(BIN))/mutmut run --max-children 2; $(abspath $(BIN))/mutmut export-cicd-stats
	$(BIN)/python bench/mutation_score.py .mutation/mutants/mutmut-cicd-stats.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache mutants .mutation
