"""The official MCP Python SDK's client against the sandbox's /mcp.

Run by tests/sdk_mcp.rs: `python mcp_python.py URL TOKEN SPACE`. Connects as
any Python MCP client would (default `auto` mode: a `server/discover` probe,
then the initialize handshake), lists the tools, calls a valid tool, a tool
with invalid arguments and an unknown tool, and closes (DELETE). Prints one
JSON object on stdout for the Rust test to assert on: the answers, every
HTTP exchange (method, JSON-RPC method, status) and every warning or error
the SDK logged.
"""

import asyncio
import json
import logging
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


class Collect(logging.Handler):
    """Keeps what the SDK logs at WARNING or above."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


def result(r):
    return {"isError": bool(r.is_error), "texts": [c.text for c in r.content]}


async def main(url, token, space):
    logs = Collect()
    logging.getLogger().addHandler(logs)
    headers = {"Authorization": f"Bearer {token}", "X-Mana-Space": space}
    out = {}
    exchanges = []

    async def record(response):
        body = response.request.content
        method = json.loads(body).get("method", "") if body else ""
        exchanges.append([response.request.method, method, response.status_code])

    async with create_mcp_http_client(headers=headers) as http:
        http.event_hooks = {"response": [record]}
        async with Client(streamable_http_client(url, http_client=http)) as client:
            out["protocolVersion"] = client.protocol_version
            out["serverName"] = client.server_info.name if client.server_info else None
            tools = await client.list_tools()
            out["tools"] = [t.name for t in tools.tools]
            out["nextCursor"] = tools.next_cursor
            out["valid"] = result(await client.call_tool("todo.create", {"title": "Einkaufen"}))
            out["invalid"] = result(await client.call_tool("mood.log", {"level": 11, "emotion": "x"}))
            out["unknown"] = result(await client.call_tool("nope.nope", {}))
    out["exchanges"] = exchanges
    out["warnings"] = logs.records
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
