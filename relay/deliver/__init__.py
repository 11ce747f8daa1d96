"""Delivery upstream: classify replies (pure) and speak SMTP to the smarthost (aiosmtplib)."""
