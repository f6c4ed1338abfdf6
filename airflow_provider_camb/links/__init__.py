"""Operator extra links of the CAMB operators."""
