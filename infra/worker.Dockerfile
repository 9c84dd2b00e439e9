# The project and its dependencies, for the worker of infra/docker-compose.yml.
FROM python:3.11-slim
WORKDIR /recmill
RUN apt-get update && apt-get install -y --no-install-recommends build-essential git && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY recmill recmill
COPY pipelines pipelines
COPY flows flows
RUN pip install --no-cache-dir -e .
COPY params.yaml prefect.yaml dvc.yaml ./
