"""Tiers: accounts on a plan (free, pro, enterprise), hashed API keys, per-key usage."""
