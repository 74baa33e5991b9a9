#!/bin/sh
# Starts the Rasa server or the action server of the kommunchatt-rasa image.
# The internal token (KOMMUNCHATT_INTERNAL_TOKEN) guards Rasa's HTTP API; the service sends it.
set -eu
case "${1:-server}" in
  server)
    : "${KOMMUNCHATT_INTERNAL_TOKEN:?set KOMMUNCHATT_INTERNAL_TOKEN (the secret shared with the service)}"
    exec rasa run --enable-api --auth-token "$KOMMUNCHATT_INTERNAL_TOKEN" \
      --interface 0.0.0.0 --port "$RASA_PORT" --model /app/models \
      --endpoints "${RASA_ENDPOINTS:-bot/endpoints.yml}" --credentials bot/credentials.yml ;;
  actions)
    exec rasa run actions --actions actions --port "$ACTIONS_PORT" ;;
  *)
    exec "$@" ;;
esac
