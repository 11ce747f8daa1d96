"""Start and stop the HTTP listener in the relay's own event loop."""

from __future__ import annotations

from aiohttp import web

from relay.receive.options import TcpListener
from relay.web.app import create_app
from relay.web.context import SETTINGS
from relay.web.deps import WebDeps, WebSettings

__all__ = ["WebServer"]


class WebServer:
    """The page and API over ``deps`` on ``listen``."""

    def __init__(self, deps: WebDeps, settings: WebSettings, listen: TcpListener) -> None:
        self.listen = listen
        self._app = create_app(deps, settings)
        # open event streams and waits end on shutdown; what still runs gets 2 s
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=2.0)
        self.url = ""

    async def start(self) -> str:
        """Bind and serve; return the page's URL (with the real port if 0 was asked)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen.host, self.listen.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        return self.url

    def reconfigure(self, settings: WebSettings) -> None:
        """Put reloaded ``settings`` in force from the next request on."""
        self._app[SETTINGS].settings = settings

    async def stop(self) -> None:
        """End open event streams and waits, then close the listener."""
        await self._runner.cleanup()
