// Drives mcp-task-relay with the official MCP TypeScript SDK client, as a
// real orchestrator would: submit a job, wait for it with jobs_wait, read
// its patch. Prints one JSON line with what it saw.
//
//   node client.mjs stdio BINARY CONFIG_DIR SPEC_JSON
//   node client.mjs http URL TOKEN SPEC_JSON
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, a, b, specJSON] = process.argv.slice(2);
let transport;
if (mode === "stdio") {
  transport = new StdioClientTransport({ command: a, args: ["serve", "--config-dir", b], env: process.env, stderr: "inherit" });
} else if (mode === "http") {
  transport = new StreamableHTTPClientTransport(new URL(a), { requestInit: { headers: { Authorization: `Bearer ${b}` } } });
} else {
  throw new Error(`unknown mode ${mode}`);
}
const client = new Client({ name: "ts-sdk-e2e", version: "1.0.0" });
await client.connect(transport);

const tools = await client.listTools();
const call = async (name, args) => {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) throw new Error(`${name}: ${res.content[0].text}`);
  return res.structuredContent;
};
const submitted = await call("jobs_submit", { spec: JSON.parse(specJSON) });
let status = { state: submitted.state };
const terminal = new Set(["SUCCEEDED", "FAILED", "CANCELED", "EXPIRED"]);
const deadline = Date.now() + 60_000;
while (!terminal.has(status.state)) {
  if (Date.now() > deadline) throw new Error(`job is still ${status.state}`);
  status = await call("jobs_wait", { jobId: submitted.jobId, timeoutS: 10 });
}
const patch = await client.readResource({ uri: `mcp://jobs/${submitted.jobId}/artifacts/patch.diff` });
const listed = await call("jobs_list", {});
await client.close();
console.log(JSON.stringify({
  tools: tools.tools.map((t) => t.name).sort(),
  jobId: submitted.jobId,
  state: status.state,
  attempt: status.attempt,
  patch: patch.contents[0].text,
  listed: listed.total,
}));
