"""Dataset formats, samples and caches."""
