"""`longrun mcp --http`: the MCP server over streamable HTTP, behind a bearer token.

The token is made when the server starts, printed once, and kept in the process only as its
SHA-256. The SDK's own auth hooks check every request (`AuthSettings` with a `TokenVerifier`): one
whose `Authorization: Bearer` token does not hash to it, or that has none, gets a 401 and reaches
nothing. Listening on loopback, the SDK also refuses a Host or an Origin that is not loopback (a
page on a rebound DNS name).
"""

from __future__ import annotations

import hashlib
import hmac
import socket

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from longrun.app.mcp.server import LongrunMCP

PATH = "/mcp"
CLIENT_ID = "bearer-token"
"""Who the SDK takes a request with the token to be (every holder of the token is the same one)."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class HashedToken:
    """A `TokenVerifier` that holds only the SHA-256 of the token it lets in."""

    def __init__(self, token: str) -> None:
        self.digest = _digest(token)

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(_digest(token), self.digest):
            return None
        return AccessToken(token=self.digest, client_id=CLIENT_ID, scopes=[])


def auth_for(url: str) -> AuthSettings:
    """Bearer tokens checked by a `TokenVerifier` alone: no authorization server, no metadata
    routes (the SDK asks for an issuer URL all the same; this server's own is given)."""
    return AuthSettings(issuer_url=url, resource_server_url=None)  # type: ignore[arg-type]


def serve(server: LongrunMCP, sock: socket.socket, host: str) -> None:
    """Serve `server` on the bound `sock` until SIGINT or SIGTERM. No access log."""
    import uvicorn

    app = server.streamable_http_app(streamable_http_path=PATH, host=host)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
