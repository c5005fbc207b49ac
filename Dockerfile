# syntax=docker/dockerfile:1
# flareflow: one image for every Python service of docker-compose.yml (Airflow, MLflow, the NVFlare
# provisioning, server and hospital sites). Dependencies come only from uv.lock; no secret is baked in:
# credentials reach the containers as environment variables at run time.
FROM python:3.11-slim

ARG UV_VERSION=0.13.9
ARG APP_UID=50000

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app

# Dependencies first (a layer that changes only with the lock), then the project itself.
COPY pyproject.toml uv.lock README.md ./
COPY hospital/pyproject.toml hospital/README.md hospital/
RUN uv sync --frozen --no-dev --all-packages --all-extras --no-install-workspace

COPY flareflow/ flareflow/
COPY hospital/ hospital/
COPY dags/ dags/
COPY configs/ configs/
COPY data/ data/
COPY docker/ docker/
RUN uv sync --frozen --no-dev --all-packages --all-extras

# An unprivileged user owns only the folders the services write; named volumes mounted there take
# over this ownership when Docker creates them. The code under /app stays root-owned and read-only.
RUN groupadd --system --gid "${APP_UID}" flareflow \
    && useradd --system --uid "${APP_UID}" --gid flareflow --create-home --home-dir /home/flareflow \
        --shell /bin/bash flareflow \
    && mkdir -p /opt/airflow/logs /opt/mlflow/artifacts /opt/nvflare /opt/flareflow/work \
    && chown -R flareflow:flareflow /opt/airflow /opt/mlflow /opt/nvflare /opt/flareflow

ENV PATH=/app/.venv/bin:${PATH} \
    HOME=/home/flareflow \
    AIRFLOW_HOME=/opt/airflow \
    FLAREFLOW_PROJECT_DIR=/app \
    FLAREFLOW_CONFIG_DIR=/app/configs \
    FLAREFLOW_WORK_DIR=/opt/flareflow/work

USER flareflow

CMD ["airflow", "version"]
