"""Kommunchatt: the citizen-service chat for Nordic municipalities (the service side)."""
