# primer-serving: one image runs `primer-serve` over the model repository at /models, or, as
# TF Serving's image does, `tensorflow_model_server` over one model when MODEL_NAME is set:
#   docker run -e MODEL_NAME=half_plus_two -v "$PWD/half_plus_two:/models/half_plus_two" ...
# (MODEL_BASE_PATH defaults to /models; TF Serving flags appended to `docker run` win.)
#
#   CPU:   docker build -t primer-serving:cpu .
#   GPU:   docker build --build-arg VARIANT=gpu -t primer-serving:gpu .
#          docker run --gpus all -p 8500:8500 -p 8501:8501 -v "$PWD/models:/models:ro" primer-serving:gpu
#   Baked: docker build --build-arg MODELS=baked -t primer-serving:mnist .   (copies ./models in)
#   Model-only image for the Kubernetes init container: docker build --target models -t primer-models .
#   Locust for the compose `load` profile: docker build --target loadtest -t primer-serving:loadtest .
#
# Every setting is a PRIMER_* environment variable (service/config.py), e.g.
#   docker run -e PRIMER_DEVICE=cpu -e PRIMER_SHUTDOWN_TIMEOUT_S=20 ...
# or a flag appended to the entrypoint: docker run primer-serving:cpu --config /etc/primer/serve.yaml
# docs/deploy.md explains each variant, scale-out and how to roll new model versions.

ARG PYTHON_VERSION=3.11
# cpu | gpu: gpu adds TensorFlow's CUDA wheels (tensorflow[and-cuda]); the host needs only
# the NVIDIA driver and the container toolkit.
ARG VARIANT=cpu
# none | baked: baked copies ./models into the image; none expects a volume at /models.
ARG MODELS=none

# ---- build: a virtualenv holding the package and its dependencies -----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG VARIANT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (their layer is reused while only the code changes).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install -r requirements.txt \
 && if [ "$VARIANT" = "gpu" ]; then \
      pip install "tensorflow[and-cuda]==$(python -c 'import importlib.metadata as m; print(m.version("tensorflow"))')"; \
    elif [ "$VARIANT" != "cpu" ]; then \
      echo "VARIANT must be cpu or gpu, got $VARIANT" >&2; exit 1; \
    fi
COPY contract ./contract
COPY service ./service
COPY training ./training
RUN pip install --no-deps . \
 && primer-serve --help > /dev/null \
 && tensorflow_model_server --help > /dev/null

# ---- models: the repository, also usable alone as an init-container image ----------------
FROM busybox:1.36 AS models
COPY models/ /models/

# ---- runtime: slim Python, the virtualenv, a non-root user --------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="primer-serving" \
      org.opencontainers.image.description="TF Serving and KServe v2 compatible server for the primer's classifiers" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.primer-serving.variant="${VARIANT}"
RUN groupadd --system --gid 10001 primer \
 && useradd --system --uid 10001 --gid primer --create-home --home-dir /home/primer primer \
 && mkdir -p /models \
 && chown primer:primer /models
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    PRIMER_MODEL_BASE_PATH=/models \
    PRIMER_HOST=0.0.0.0 \
    PRIMER_REST_PORT=8501 \
    PRIMER_GRPC_PORT=8500
WORKDIR /home/primer
USER 10001:10001
# 8500 gRPC (TF Serving PredictionService, KServe v2), 8501 REST (/v1, /v2, /metrics)
EXPOSE 8500 8501
# Ready = models loaded and warmed and not draining; python is in the image, curl is not.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PRIMER_REST_PORT', '8501') + '/v2/health/ready', timeout=4)"]
STOPSIGNAL SIGTERM
# MODEL_NAME set (or TF Serving flags given): tensorflow_model_server; else primer-serve
# (service/tfserving_cli/entrypoint.py)
ENTRYPOINT ["primer-entrypoint"]
CMD []

# ---- loadtest: the runtime plus Locust, for docker-compose's `load` profile ----------------
FROM runtime AS loadtest
USER root
RUN pip install "locust>=2.30,<3"
USER 10001:10001
EXPOSE 8089
HEALTHCHECK NONE
ENTRYPOINT ["locust"]

# ---- final image: with or without the models baked in --------------------------------------
FROM runtime AS with-models-none

FROM runtime AS with-models-baked
COPY --from=models --chown=10001:10001 /models/ /models/

FROM with-models-${MODELS} AS final
