# One image for the processor, the dashboard, the CLI and the Airflow components.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
# LightGBM's wheel (the risk model, docs/model.md) links the system's OpenMP runtime, not one of its own
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "uv>=0.13,<0.14"
WORKDIR /opt/txnmon
COPY pyproject.toml uv.lock README.md ./
# the deploy extra: Airflow's CeleryExecutor and the PostgreSQL driver of its metadata database
RUN uv sync --frozen --no-dev --extra deploy --no-install-project
COPY . .
RUN uv sync --frozen --no-dev --extra deploy
# The official Airflow Helm chart runs its pods as uid 50000, group 0, with AIRFLOW_HOME /opt/airflow
# (logs, the simple auth manager's generated passwords): a home that user and group can write.
# The txnmon containers on Kubernetes run as another non-root user and write nothing to disk.
RUN mkdir -p /opt/airflow && chown 50000:0 /opt/airflow && chmod 775 /opt/airflow
