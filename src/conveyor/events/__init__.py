"""The event bus: typed domain events delivered through the job engine."""
