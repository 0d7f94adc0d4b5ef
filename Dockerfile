# syntax=docker/dockerfile:1.7
# The hairseg project image: every KFP step of hairseg-training / hairseg-drift runs in it.
# It holds exactly the pinned environment of requirements.lock plus this package (core,
# components, pipelines, serving), so a step installs nothing when it starts.
#
#   docker build -t ghcr.io/hairseg/hairseg:0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#   docker push ghcr.io/hairseg/hairseg:0.1.0
#
# Tag = the package version (pyproject.toml); `hairseg pipeline compile --registry` must name
# the same repository. TORCH_VARIANT=cuda (default) puts the CUDA build of torch in, for the
# GPU train step; TORCH_VARIANT=cpu keeps the image small (CPU-only clusters, CI).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ARG TORCH_VARIANT=cuda
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}" \
 && python -m venv "${VIRTUAL_ENV}"
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN if [ "${TORCH_VARIANT}" = "cpu" ]; then \
        uv pip sync --python "${VIRTUAL_ENV}/bin/python" \
          --extra-index-url "${TORCH_CPU_INDEX}" --index-strategy unsafe-best-match \
          requirements.lock; \
    else \
        uv pip sync --python "${VIRTUAL_ENV}/bin/python" requirements.lock \
     && uv pip install --python "${VIRTUAL_ENV}/bin/python" --reinstall-package torch \
          "torch==$(grep -E '^torch==' requirements.lock | cut -d= -f3)"; \
    fi
# Then the project itself, without touching the pinned dependencies.
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines/hairseg_pipelines ./pipelines/hairseg_pipelines
COPY serving/hairseg_serving ./serving/hairseg_serving
RUN uv pip install --python "${VIRTUAL_ENV}/bin/python" --no-deps .

FROM ${PYTHON_IMAGE}
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="hairseg" \
      org.opencontainers.image.description="hairseg: hair segmentation MLOps (KFP steps, CLI)" \
      org.opencontainers.image.source="https://github.com/hairseg/hairseg" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.licenses="Apache-2.0"
# git: DVC and lineage tags; libgomp1: torch/onnxruntime CPU kernels.
# The KFP v2 launcher stages artifacts under /gcs, /minio, /s3 and /oci: a non-root step
# cannot create them at / (kubeflow/pipelines#10397), so they exist, owned by the step's user.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 hairseg \
 && mkdir -p /gcs /minio /s3 /oci \
 && chown 1000:1000 /gcs /minio /s3 /oci
COPY --from=build /opt/venv /opt/venv
# Feast repo definitions: steps use feature_store.cluster.yaml from here.
COPY feature_repo /opt/hairseg/feature_repo
COPY params.yaml /opt/hairseg/params.yaml
ENV PATH=/opt/venv/bin:${PATH} \
    VIRTUAL_ENV=/opt/venv \
    HAIRSEG_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    DVC_NO_ANALYTICS=1 \
    GX_ANALYTICS_ENABLED=false \
    FEAST_USAGE=False
WORKDIR /opt/hairseg
USER 1000
# KFP replaces the command with its executor; this default makes `docker run IMAGE` useful.
ENTRYPOINT []
CMD ["hairseg", "--help"]
