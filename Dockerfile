# The intake service: `intake run` (the worker), `intake web`, `intake db upgrade` ...
# Built and run by docker-compose.yml; data (SQLite, archive, health file) under /data.
FROM python:3.11-slim

# PYTHONPATH: the code, alembic/ and config/ are read from /app (alembic/ is not in the wheel;
# `pip install .` brings the dependencies and the `intake` command).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    INTAKE_DATA_DIR=/data \
    INTAKE_CONFIG=/app/config/intake.toml

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin intake \
    && mkdir -p /data/archive \
    && chown -R intake:intake /data

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY intake ./intake
COPY storage ./storage
COPY alembic ./alembic
COPY config ./config
RUN pip install . && python -c "import intake.cli, storage.session"

USER intake
VOLUME ["/data"]
ENTRYPOINT ["intake"]
CMD ["run"]
