# co2fi with a CUDA build of Caffe. CI does not run Docker; see README ("Docker").
#   docker build -t co2fi .
#   docker run --gpus all --rm -it -v /path/to/datasets:/data co2fi make demo
# The image is built without a GPU, so the CUDA build is compile-checked at build time
# (CO2FI_CUDA_COMPILE_ONLY=1) and runs on the GPU that `docker run --gpus all` gives it.
FROM nvidia/cuda:12.6.3-devel-ubuntu24.04

ARG CUDA_ARCH=90
ENV DEBIAN_FRONTEND=noninteractive \
    CO2FI_CUDA_ARCH=${CUDA_ARCH} \
    CO2FI_CACHE=/opt/co2fi-cache

# Python and what tools/install_caffe.sh needs to fetch Debian's caffe source package;
# the script installs Caffe's own build dependencies itself.
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-dev python3-venv debian-archive-keyring ca-certificates make git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/co2fi
COPY . .
RUN make venv \
    && CO2FI_CUDA_COMPILE_ONLY=1 tools/install_caffe.sh --venv .venv --cuda on \
    && rm -rf /root/.cache/pip

CMD ["make", "demo"]
