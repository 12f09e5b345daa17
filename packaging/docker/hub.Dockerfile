# syntax=docker/dockerfile:1
# The Millstream hub: `millstream[hub]` in a slim Python image, run as an unprivileged user.
#   docker build -f packaging/docker/hub.Dockerfile -t millstream-hub .
# (docker-compose.yml builds it; docs/deploy.md). Build context: the repository root.

ARG PYTHON_VERSION=3.11

# -- build: the project wheel and every dependency's wheel -----------------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is made of (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY wire/ wire/
COPY edge_agent/ edge_agent/
COPY hub/ hub/
COPY device_profiles/ device_profiles/
# Every dependency has manylinux wheels (asyncpg, confluent-kafka with librdkafka inside, uvloop),
# so the runtime stage needs no compiler.
RUN pip wheel --wheel-dir /wheels ".[hub]"

# -- runtime ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/millstream/bin:$PATH
RUN groupadd --system --gid 10001 millstream \
 && useradd --system --uid 10001 --gid millstream --home-dir /var/lib/millstream \
      --create-home --shell /usr/sbin/nologin millstream
# The wheels are mounted for this step only, so they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/millstream \
 && /opt/millstream/bin/pip install --no-index --find-links /wheels "millstream[hub]" \
 && /opt/millstream/bin/pip uninstall --yes pip
USER millstream
WORKDIR /var/lib/millstream
# Health, metrics, API (http.port in hub.yaml).
EXPOSE 8000
CMD ["millstream-hub", "serve"]
