"""The citizen's side of a chat: conversations and messages, the chat service and API, the Rasa client."""
