"""The billing example: validate invoice exports with conveyor jobs.

Run it with ``python -m examples.billing`` (or ``scripts/demo``); see README.md.
"""
