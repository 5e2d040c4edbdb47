# co2fi with a CUDA build of Caffe, for training on GPUs (README, "Docker").
#
#   docker build -t co2fi .                                   # Volta..Hopper (70-90) + PTX
#   docker build --build-arg CUDA_ARCH="86" -t co2fi .        # one architecture: a faster build
#   docker run --gpus all --rm -it -v /data/ucf101:/data -v "$PWD/runs:/opt/co2fi/runs" co2fi make demo
#
# BASE is any Debian/Ubuntu image. The default, NVIDIA's CUDA 12.6 devel image, is what GPU users
# pull. A base without nvcc (`make docker-test` uses a local Debian 12 minbase) gets CUDA 13's
# compiler, runtime, cuBLAS, cuRAND and cuobjdump from PyPI wheels (CUDA_WHEELS); CUDA 13 has no
# Volta, so pass CUDA_ARCH without 70 there. No GPU is needed to build: the CUDA build is
# compiled here (CO2FI_CUDA_COMPILE_ONLY=1) and runs on the GPUs `docker run --gpus all` gives it.
# Caffe is built before the sources are copied, so editing Python code reuses that layer.
ARG BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04
FROM ${BASE}

# CUDA architectures (tools/install_caffe.sh --cuda-arch): SASS for each, PTX for "+PTX".
ARG CUDA_ARCH="70 75 80 86 89 90 +PTX"
ARG CUDA_WHEELS="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-cuobjdump==13.2.51"
# Compile jobs (default: all cores of the build machine).
ARG JOBS=""
# NCCL for multi-GPU training (tools/install_caffe.sh --nccl; auto = on with CUDA): the
# nvidia-nccl-cu<major> wheel where the base has no NCCL.
ARG NCCL=auto

# CO2FI_CUDA/_ARCH/_COMPILE_ONLY stay set: `make test`, `make demo` in the container find the
# CUDA build made here (same cache key) instead of building a CPU one.
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/usr/local/cuda/bin:${PATH} \
    CO2FI_CACHE=/opt/co2fi-cache \
    CO2FI_CUDA=on \
    CO2FI_CUDA_ARCH="${CUDA_ARCH}" \
    CO2FI_NCCL="${NCCL}" \
    CO2FI_CUDA_COMPILE_ONLY=1

# Python and what tools/install_caffe.sh needs to fetch Debian's caffe source package; the
# script installs Caffe's own build dependencies (it runs here as root).
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-dev python3-venv debian-archive-keyring ca-certificates make git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/co2fi
COPY tools/install_caffe.sh tools/
RUN CO2FI_CUDA=off tools/install_caffe.sh --deps-only && rm -rf /var/lib/apt/lists/*

# The project's Python packages (numpy >= 2 is needed to build pycaffe). A build secret
# "ca-bundle" (tools/docker/test.sh passes the host's) is used where HTTPS goes through a proxy.
COPY requirements.txt requirements-dev.txt ./
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    python3 -m venv .venv \
    && .venv/bin/pip install -q --no-cache-dir --upgrade pip \
    && .venv/bin/pip install -q --no-cache-dir -r requirements-dev.txt

# CUDA from PyPI wheels when the base has no nvcc (a no-op on NVIDIA's images).
COPY tools/docker/cuda_from_wheels.sh tools/docker/
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    tools/docker/cuda_from_wheels.sh .venv/bin/pip /opt/cuda-wheels ${CUDA_WHEELS}

# Caffe with CUDA for CUDA_ARCH: the README's build script, its cache inside the image. The
# build log (CMake's "Added CUDA NVCC flags for: sm_..." line) stays under $CO2FI_CACHE/logs.
COPY caffe_patches caffe_patches/
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    tools/install_caffe.sh --python .venv/bin/python --cuda on ${JOBS:+--jobs $JOBS}

# The sources; `make venv` completes the venv (editable install) and links pycaffe into it.
COPY . .
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    make venv && tools/install_caffe.sh --venv .venv >/dev/null && rm -rf /root/.cache/pip

CMD ["make", "demo"]
