"""Billing validation: upload a CSV, validate it in a job with the billing example's rules."""
