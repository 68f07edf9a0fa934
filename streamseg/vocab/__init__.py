"""Vocabularies: text encoders, vocabulary files, `streamseg vocab`."""
