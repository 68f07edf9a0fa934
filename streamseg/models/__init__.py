"""Named models (``--model NAME``): a registry, a download cache, one import, then reuse."""
