"""notify-relay: a durable SMTP relay for issue-tracker notifications."""

__all__ = ["__version__"]

__version__ = "0.1.0"
