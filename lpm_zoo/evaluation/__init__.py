"""Held-out evaluation of predictors: the seeded split, the metrics, `lpm compare`'s sweep and its plots."""
