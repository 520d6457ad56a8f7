"""Data exports: analytics rows of a date range streamed to a CSV file by a job."""
