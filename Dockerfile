# syntax=docker/dockerfile:1
# GPU worker image for AWS Batch: `stac-coh worker` on CUDA PyTorch.
#
#   docker build -t stac-coh:0.1.0 .
#   docker run --gpus all --rm stac-coh:0.1.0 --help
#
# GDAL comes inside the rasterio wheel (no system GDAL). The base image brings CUDA
# PyTorch (CUDA 12.8 runs on the T4, A10G and L4 of g4dn, g5 and g6 instances);
# pip keeps it because it satisfies the package's `torch>=2.2`.

# ---------------------------------------------------------------- build the wheel
FROM pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime AS wheel

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY stac_coh ./stac_coh
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------- runtime image
FROM pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime

LABEL org.opencontainers.image.title="stac-coh" \
      org.opencontainers.image.description="InSAR coherence from detected Sentinel-1 images: AWS Batch GPU worker" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies only, from pyproject.toml: this layer survives code changes.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; deps = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps))" \
    && python -m pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/pyproject.toml /tmp/requirements.txt

# The package itself, with its bundled weights as package data; fail the build without them.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-deps /wheels/stac_coh-*.whl \
    && python -c "import sys; from importlib.resources import files; w = files('stac_coh') / 'data' / 'weights'; sys.exit(0 if w.is_dir() and any(w.iterdir()) else 'bundled weights missing from the wheel')" \
    && stac-coh --version

# Numeric ids: runtimes that enforce "non-root" cannot resolve names inside the image.
RUN groupadd --system --gid 10001 stac-coh \
    && useradd --no-log-init --system --create-home --uid 10001 --gid 10001 \
       --home-dir /home/stac-coh stac-coh
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
