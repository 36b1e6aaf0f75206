"""wideep: plan Mixture-of-Experts inference with wide expert parallelism over cluster graphs."""

__version__ = "0.1.0"
