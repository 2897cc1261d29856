"""Gaussian-mixture score models and their compositions (products, annealed, geometric), with exact truth."""
