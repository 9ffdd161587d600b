"""livecommerce: live-stream commerce with dealer mirrors, flash sales and exact commissions."""

__version__ = "0.1.0"
