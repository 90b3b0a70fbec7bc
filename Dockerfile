# The intake service: `intake run` (the worker), `intake web`, `intake db upgrade` ...
# Built and run by docker-compose.yml; data (SQLite, archive, health file) under /data.
#
# Two stages, as any deployment installs it: the first builds the wheel (which carries alembic/
# and config/ as package data), the second installs only that wheel. No source tree and no
# PYTHONPATH in the image: the built-in configuration is in force unless a folder written by
# `intake init` is mounted at /app/config (found from the working directory) or INTAKE_CONFIG
# names a settings file.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY intake ./intake
COPY storage ./storage
COPY alembic ./alembic
COPY config ./config
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INTAKE_DATA_DIR=/data

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin intake \
    && mkdir -p /data/archive /app \
    && chown -R intake:intake /data

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && cd / && intake --help >/dev/null && python -c "import intake.cli, storage.session"

WORKDIR /app
USER intake
VOLUME ["/data"]
ENTRYPOINT ["intake"]
CMD ["run"]
