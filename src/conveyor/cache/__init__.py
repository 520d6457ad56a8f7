"""The two-tier cache: ``Cache`` (standalone) and ``app.cache``."""
