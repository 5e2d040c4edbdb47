# co2fi: the two commands of the README are `make demo` and `make test`.
# Everything else is a step they run, or a tool for developers.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CAFFE_FLAGS ?=
PYTEST_ARGS ?=
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt setup.py | sha256sum | cut -c1-12)
VENV_STAMP := $(VENV)/.co2fi-$(REQ_HASH)

.PHONY: demo claims soak test venv caffe caffe-cuda caffe-cuda-compile caffe-cpp-tests gpu-runtime gpu-rehearse docker-test netgen lint bench mutation clean-venv

demo: caffe                        ## the main job: synthetic data -> training -> evaluation -> tables
	$(PY) tools/demo.py $(DEMO_ARGS)

claims: caffe                      ## Tables 1-2 in miniature, 9 seeds two at a time, claims marked (docs/MINIATURE.md; hours)
	$(PY) tools/claims.py $(CLAIMS_ARGS)

soak: caffe                        ## fault-injection soak of a small demo (kills, full disk; root; ~10 min; not in CI)
	nice -n 10 $(PY) tools/soak.py $(SOAK_ARGS)

test: caffe                        ## every test, pycaffe's own 52 included
	$(PY) -m pytest $(PYTEST_ARGS)

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt requirements-dev.txt setup.py
	tools/install_caffe.sh --deps-only     # system packages first (python3-venv among them)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.co2fi-* && touch $@

caffe: venv                        ## CPU build (CUDA too when nvcc and a GPU are present)
	tools/install_caffe.sh --venv $(VENV) $(CAFFE_FLAGS)

caffe-cuda: venv                   ## CUDA build for Hopper (sm_90 + PTX); CO2FI_CUDA_ARCH to change
	tools/install_caffe.sh --venv $(VENV) --cuda on $(CAFFE_FLAGS)

caffe-cuda-compile: venv           ## prove the CUDA build compiles on a machine without a GPU
	CO2FI_CUDA_COMPILE_ONLY=1 tools/install_caffe.sh --python $(PY) --cuda on $(CAFFE_FLAGS)

caffe-cpp-tests: venv              ## build and run Caffe's C++ gtest suite (CPU); writes docs/caffe-cpp-tests.md
	tools/caffe_cpp_tests.sh --python $(PY)

gpu-runtime:                       ## .device/runtime.tar.xz for the GPU call: CUDA Caffe built in the chroot + its closure (root; docs/GPU.md)
	tools/gpu/build_runtime.sh

gpu-rehearse:                      ## the GPU machine's call here: trixie chroot, static Python 3.12, no GPU (root; docs/GPU.md)
	tools/gpu/rehearse_chroot.sh $(REHEARSE_ARGS)

docker-test:                       ## build the CUDA image (no GPU needed), run pycaffe's tests + a tiny demo in it
	tools/docker/test.sh $(DOCKER_TEST_ARGS)

netgen: caffe                      ## regenerate prototxt/ and solvers/
	$(PY) -m netgen

lint: venv
	$(VENV)/bin/ruff check .

bench: caffe                       ## benchmarks: print figures and ratios (not tests)
	$(PY) tools/bench_nets.py
	$(PY) tools/bench_data.py

mutation: caffe                    ## mutation score per core module (tools/mutation.py; not in CI)
	$(PY) tools/mutation.py $(MUTATION_ARGS)

clean-venv:
	rm -rf $(VENV)
