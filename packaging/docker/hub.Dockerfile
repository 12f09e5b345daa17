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
COPY millstream_common/ millstream_common/
COPY edge_agent/ edge_agent/
COPY hub/ hub/
COPY device_profiles/ device_profiles/
COPY requirements/hub.txt requirements/build.txt requirements/
# Every dependency has manylinux wheels (asyncpg, confluent-kafka with librdkafka inside, uvloop),
# so the runtime stage needs no compiler.
# The locked versions, hash-checked (requirements/hub.txt: what CI tested), then the project
# built by the locked backend with no isolated build env that could fetch another one.
RUN pip install --require-hashes --no-deps -r requirements/build.txt \
 && pip wheel --wheel-dir /wheels --require-hashes --no-deps -r requirements/hub.txt \
 && pip wheel --wheel-dir /wheels --no-deps --no-build-isolation .

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
