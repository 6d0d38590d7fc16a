# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install the bot's dependencies, start the bot
#   make test  - create .venv, install test dependencies, lint and run the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

# The stamp files reinstall only when a requirements file changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# llama-cpp-python (the tests' llama.cpp server) exists on PyPI only as source, so pip
# compiles llama.cpp: CPU only, portable (no -march=native) and without the parts a
# test server does not use. pip caches the built wheel, so reinstalling is quick.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF \
	-DGGML_BLAS=OFF -DGGML_OPENMP=OFF -DGGML_RPC=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
	-DLLAMA_OPENSSL=OFF -DLLAVA_BUILD=OFF

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "Installing test dependencies; the first build of llama.cpp takes 4-12 minutes (pip caches it)."
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
		$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

# The npm MCP servers of tests/tools/ (their tests skip, saying why, without node and npm).
NPM_SERVERS := tests/tools/npm
$(NPM_SERVERS)/node_modules/.installed: $(NPM_SERVERS)/package.json
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --no-package-lock --prefix $(NPM_SERVERS) \
		&& touch $@; \
	else echo "npm is not installed: the tests of npm MCP servers will be skipped."; fi

run: $(VENV)/.installed
	$(BIN)/python bot.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

test: $(VENV)/.installed-dev $(NPM_SERVERS)/node_modules/.installed lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis $(NPM_SERVERS)/node_modules
