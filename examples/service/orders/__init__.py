"""Orders: commands and queries, domain events through the transactional outbox."""
