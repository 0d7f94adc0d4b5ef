"""Datasets: format, generation, import adapters and validation."""
