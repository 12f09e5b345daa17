# syntax=docker/dockerfile:1
# The Millstream edge agent: `millstream[agent]` in a slim Python image, run as an unprivileged user.
# No FastAPI, asyncpg or Kafka client inside: only what a line PC runs.
#   docker build -f packaging/docker/agent.Dockerfile -t millstream-agent .
#   docker run -v ./agent.yaml:/etc/millstream/agent.yaml:ro -v agent-data:/var/lib/millstream \
#     --device /dev/ttyUSB0 millstream-agent        # --device only for Modbus RTU
# (docker-compose.yml builds it for the agent and the simulator; docs/deploy.md). Build context:
# the repository root.

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
COPY requirements/agent.txt requirements/build.txt requirements/
# Every dependency has manylinux wheels (cryptography for OPC-UA security included), so the
# runtime stage needs no compiler.
# The locked versions, hash-checked (requirements/agent.txt: what CI tested), then the project
# built by the locked backend with no isolated build env that could fetch another one.
RUN pip install --require-hashes --no-deps -r requirements/build.txt \
 && pip wheel --wheel-dir /wheels --require-hashes --no-deps -r requirements/agent.txt \
 && pip wheel --wheel-dir /wheels --no-deps --no-build-isolation .

# -- runtime ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/millstream/bin:$PATH
# dialout: serial ports passed in with --device belong to that group (Modbus RTU), as on a line PC.
RUN groupadd --system --gid 10001 millstream \
 && useradd --system --uid 10001 --gid millstream --groups dialout \
      --home-dir /var/lib/millstream --create-home --shell /usr/sbin/nologin millstream
# The wheels are mounted for this step only, so they never become a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/millstream \
 && /opt/millstream/bin/pip install --no-index --find-links /wheels "millstream[agent]" \
 && /opt/millstream/bin/pip uninstall --yes pip
USER millstream
WORKDIR /var/lib/millstream
# The buffer and the agent's OPC-UA certificate: point buffer.path and state_dir here.
VOLUME ["/var/lib/millstream"]
CMD ["edge-agent", "run", "/etc/millstream/agent.yaml"]
