"""Conjugate models with closed-form evidence (log Z), for SMC and other normaliser estimators."""
