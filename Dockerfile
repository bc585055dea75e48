# syntax=docker/dockerfile:1
# stac-coh images for AWS Batch, built from the versions the test suite ran with.
#
#   docker build -t stac-coh:0.1.0 .                     GPU worker (the default target)
#   docker build --target cpu -t stac-coh:0.1.0-cpu .    CPU image for the finalize job
#   docker run --gpus all --rm stac-coh:0.1.0 --help
#
# Every Python package is pinned by constraints.txt (what `make test` installs). GDAL comes
# inside the rasterio wheel (no system GDAL). The GPU target takes torch 2.13.0 from PyPI:
# its Linux wheel is the CUDA 13 build with pinned nvidia-*-cu13 wheels (cuDNN, cuBLAS...),
# so the host adds only the NVIDIA driver (R580 or newer for CUDA 13; the Batch GPU AMI
# provides it). The cpu target takes the CPU build of the same torch: ~1 GB instead of ~8.

# ---------------------------------------------------------------- shared base
FROM python:3.11.7-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Numeric ids: runtimes that enforce "non-root" cannot resolve names inside the image.
RUN groupadd --system --gid 10001 stac-coh \
    && useradd --no-log-init --system --create-home --uid 10001 --gid 10001 \
       --home-dir /home/stac-coh stac-coh

# The dependencies of pyproject.toml, pinned by constraints.txt: this layer survives code
# changes.
COPY pyproject.toml constraints.txt /opt/stac-coh/
RUN python -c "import tomllib; deps = tomllib.load(open('/opt/stac-coh/pyproject.toml', 'rb'))['project']['dependencies']; open('/opt/stac-coh/requirements.txt', 'w').write(chr(10).join(deps))"

# ---------------------------------------------------------------- build the wheel
FROM base AS wheel

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY stac_coh ./stac_coh
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------- CPU image (finalize)
FROM base AS cpu

LABEL org.opencontainers.image.title="stac-coh-cpu" \
      org.opencontainers.image.description="InSAR coherence from detected Sentinel-1 images: AWS Batch finalize job (CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN python -m pip install --no-cache-dir -c /opt/stac-coh/constraints.txt \
        --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu" \
    && python -m pip install --no-cache-dir -c /opt/stac-coh/constraints.txt \
        -r /opt/stac-coh/requirements.txt

# The package itself, with its bundled weights as package data; fail the build without them.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-deps /wheels/stac_coh-*.whl \
    && python -c "import sys; from importlib.resources import files; w = files('stac_coh') / 'data' / 'weights'; sys.exit(0 if w.is_dir() and any(w.iterdir()) else 'bundled weights missing from the wheel')" \
    && stac-coh --version

USER 10001:10001
WORKDIR /home/stac-coh

ENTRYPOINT ["stac-coh", "worker"]
CMD ["finalize"]

# ---------------------------------------------------------------- GPU image (worker)
FROM base AS gpu

LABEL org.opencontainers.image.title="stac-coh" \
      org.opencontainers.image.description="InSAR coherence from detected Sentinel-1 images: AWS Batch GPU worker" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN python -m pip install --no-cache-dir -c /opt/stac-coh/constraints.txt "torch==2.13.0" \
        -r /opt/stac-coh/requirements.txt

# The package itself, with its bundled weights as package data; fail the build without them.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-deps /wheels/stac_coh-*.whl \
    && python -c "import sys; from importlib.resources import files; w = files('stac_coh') / 'data' / 'weights'; sys.exit(0 if w.is_dir() and any(w.iterdir()) else 'bundled weights missing from the wheel')" \
    && stac-coh --version

USER 10001:10001
WORKDIR /home/stac-coh

# Optionally bake weights into the image (needs network at build time), e.g.
#   docker build --build-arg STAC_COH_BAKE_WEIGHTS=auto -t stac-coh:0.1.0 .
# converts the published weights into the image's cache, where `--weights auto` finds them
# without the Hub. `stac-coh submit` still uploads the run's copy, which the workers read.
ARG STAC_COH_BAKE_WEIGHTS=""
ENV STAC_COH_CACHE_DIR=/home/stac-coh/.cache/stac-coh
RUN if [ -n "${STAC_COH_BAKE_WEIGHTS}" ]; then \
        stac-coh weights info "${STAC_COH_BAKE_WEIGHTS}" --json > /dev/null \
        && echo "baked weights: ${STAC_COH_BAKE_WEIGHTS}"; \
    fi

ENTRYPOINT ["stac-coh", "worker"]
CMD ["process"]
