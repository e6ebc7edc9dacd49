// The official MCP TypeScript SDK's client against the sandbox's /mcp.
//
// Run by tests/sdk_mcp.rs: `node mcp_ts.mjs URL TOKEN SPACE` with NODE_PATH
// pointing at a node_modules that has @modelcontextprotocol/sdk. Connects,
// lists the tools, calls a valid tool, a tool with invalid arguments and an
// unknown tool, terminates the session (DELETE) and closes. Prints one JSON
// object on stdout for the Rust test to assert on, including every error the
// transport reported and every console warning.
import { createRequire } from 'node:module';
import path from 'node:path';

// ESM ignores NODE_PATH: resolve the SDK from it explicitly.
const require = createRequire(path.join(process.env.NODE_PATH ?? '.', 'noop.js'));
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');

const [url, token, space] = process.argv.slice(2);
const warnings = [];
for (const level of ['warn', 'error']) {
  console[level] = (...args) => warnings.push(`console.${level}: ${args.join(' ')}`);
}

const exchanges = [];
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}`, 'X-Mana-Space': space } },
  fetch: async (input, init) => {
    const response = await fetch(input, init);
    const method = init?.body ? (JSON.parse(init.body).method ?? '') : '';
    exchanges.push([init?.method ?? 'GET', method, response.status]);
    return response;
  },
});
const client = new Client({ name: 'mana-personas-sdk-test', version: '0' });
client.onerror = (e) => warnings.push(`onerror: ${e}`);

const result = (r) => ({ isError: Boolean(r.isError), texts: r.content.map((c) => c.text) });
const out = {};
await client.connect(transport);
out.protocolVersion = transport.protocolVersion;
out.serverName = client.getServerVersion()?.name ?? null;
const tools = await client.listTools();
out.tools = tools.tools.map((t) => t.name);
out.nextCursor = tools.nextCursor ?? null;
out.valid = result(await client.callTool({ name: 'todo.create', arguments: { title: 'Einkaufen' } }));
out.invalid = result(await client.callTool({ name: 'mood.log', arguments: { level: 11, emotion: 'x' } }));
out.unknown = result(await client.callTool({ name: 'nope.nope', arguments: {} }));
try {
  await transport.terminateSession();
  out.terminated = transport.sessionId === undefined;
} catch (e) {
  out.terminated = false;
  warnings.push(`terminateSession: ${e}`);
}
await client.close();
out.exchanges = exchanges;
out.warnings = warnings;
process.stdout.write(JSON.stringify(out) + '\n');
