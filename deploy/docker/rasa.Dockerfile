# syntax=docker/dockerfile:1
# The Rasa side (Python 3.10): the Rasa server and the action server, one image, two commands:
#   docker run kommunchatt-rasa server     (Rasa, :5005)
#   docker run kommunchatt-rasa actions    (action server, :5055)
# Build from the repository root:  docker build -f deploy/docker/rasa.Dockerfile -t kommunchatt-rasa .
# The dialogue model is trained during the build, so every replica serves the same model.
FROM python:3.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    RASA_TELEMETRY_ENABLED=false \
    RASA_PORT=5005 \
    ACTIONS_PORT=5055

WORKDIR /app

COPY requirements-rasa.txt ./
RUN pip install -r requirements-rasa.txt

COPY config.yml ./
COPY bot/ bot/
COPY actions/ actions/
COPY data/nlu.yml data/rules.yml data/stories.yml data/
COPY deploy/rasa/ deploy/rasa/
COPY deploy/docker/rasa-entrypoint.sh /usr/local/bin/kommunchatt-rasa
RUN rasa train --config config.yml --domain bot/domain.yml \
        --data data/nlu.yml data/rules.yml data/stories.yml \
        --out /app/models --fixed-model-name kommunchatt \
    && useradd --system --uid 10001 --home-dir /app kommunchatt \
    && chown -R kommunchatt /app

USER 10001
EXPOSE 5005 5055
ENTRYPOINT ["/usr/local/bin/kommunchatt-rasa"]
CMD ["server"]
