"""The HTTP side: the aiohttp app, its JSON API, the page, and the operations endpoints."""
