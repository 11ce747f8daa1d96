"""The capture store: delivered (or, in capture mode, all) messages kept for inspection."""
