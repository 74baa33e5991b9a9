"""Rasa-side plumbing for Kommunchatt: the custom input channel and the tracker store."""
