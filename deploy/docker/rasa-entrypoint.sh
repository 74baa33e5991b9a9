#!/bin/sh
# Starts the Rasa server or the action server of the kommunchatt-rasa image.
# The internal token (KOMMUNCHATT_INTERNAL_TOKEN) guards Rasa's HTTP API; the service sends it.
set -eu
case "${1:-server}" in
  server)
    : "${KOMMUNCHATT_INTERNAL_TOKEN:?set KOMMUNCHATT_INTERNAL_TOKEN (the secret shared with the service)}"
    # bot.server hands the token to Rasa inside the process: never on the command line (ps shows it).
    exec python -m bot.server \
      --interface 0.0.0.0 --port "$RASA_PORT" --model /app/models \
      --endpoints "${RASA_ENDPOINTS:-bot/endpoints.yml}" --credentials bot/credentials.yml ;;
  actions)
    # bot.action_server: the shared secret on /webhook, /metrics; all interfaces inside the container.
    ACTIONS_INTERFACE=0.0.0.0 exec python -m bot.action_server ;;
  *)
    exec "$@" ;;
esac
