"""Benchmark targets of the diffusion-sampler literature (GMM40, funnel, ManyWell) with exact log Z."""
