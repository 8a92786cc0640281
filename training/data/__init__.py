"""Data preparation: sources, filters, dedup, scrubbing, split, examples."""
