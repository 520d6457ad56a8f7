"""A/B testing: experiments, events through the bus, statistics, Thompson-sampling weights."""
