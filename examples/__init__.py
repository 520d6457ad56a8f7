"""Examples of conveyor in use: billing/ (the CLI demo) and service/ (the reference service)."""
