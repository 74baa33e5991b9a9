"""The bottom layer: configuration, database engine, events, text, languages, users, FastAPI dependencies."""
