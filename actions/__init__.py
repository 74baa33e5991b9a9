"""Kommunchatt custom actions: thin HTTP clients of the service (see docs/architecture.md)."""
