"""The listener side: who may connect, the aiosmtpd hooks, and the servers."""
