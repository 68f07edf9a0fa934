"""streamseg."""
