# vcompile: set up, run the main job, run the tests.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MODEL   ?= resnet18
ARTIFACTS ?= .cache/models

.PHONY: setup demo test test-fast lint clean

# Debian packages the tests use: Graphviz and Chromium (report, issue 11), the aarch64
# cross toolchain and qemu, clang+lld for Android, PoCL for OpenCL, CMake for the bundle
# runner (targets, issue 8).
APT_PACKAGES := graphviz chromium gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user \
	clang lld pocl-opencl-icd ocl-icd-opencl-dev cmake
APT_STAMP := $(VENV)/.apt

$(APT_STAMP):
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing Debian packages: $$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	mkdir -p $(VENV) && touch $(APT_STAMP)

$(STAMP): pyproject.toml $(APT_STAMP)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.14.1 + torchvision 0.29.1 come from the machine's local wheel cache.
	$(BIN)/pip install -q -e '.[torch,tvm,dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job: export a timm model (random weights) to ONNX, inspect it, compile it at
# -O2 for this machine and run the library on a random input.
demo: $(STAMP)
	$(BIN)/python -m vcompile.models export $(MODEL) -o $(ARTIFACTS)/$(MODEL).onnx
	$(BIN)/vcompile inspect $(ARTIFACTS)/$(MODEL).onnx -O2 --stats
	$(BIN)/vcompile $(ARTIFACTS)/$(MODEL).onnx --target host -O2 -o $(ARTIFACTS)/$(MODEL).so
	$(BIN)/vcompile run $(ARTIFACTS)/$(MODEL).so

# Two xdist workers on two cores: one BLAS/TVM thread each, or they thrash.
TEST_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 TVM_NUM_THREADS=1

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# ruff (with the private-import rule), the package layers (import-linter, pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check vcompile tests
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .cache .pytest_cache
