// One Codex-shaped Responses loop with the official OpenAI Node SDK against the proxy:
// a tool call, its output sent back by previous_response_id, the answer; then streamed.
// Usage: node responses_loop.mjs <base URL> <model>; prints what it saw as one JSON line.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "x", maxRetries: 0 });
const tools = [{ type: "function", name: "shell", parameters: { type: "object", properties: { command: { type: "string" } } } }];

const first = await client.responses.create({ model, input: "List the files.", tools });
const call = first.output.find((item) => item.type === "function_call");
const second = await client.responses.create({
  model,
  previous_response_id: first.id,
  input: [{ type: "function_call_output", call_id: call.call_id, output: "README.md" }],
  tools,
});
const events = [];
let text = "";
const stream = await client.responses.create({ model, input: "Say hello.", stream: true });
for await (const event of stream) {
  events.push(event.type);
  if (event.type === "response.output_text.delta") text += event.delta;
}
console.log(JSON.stringify({ first: first.model, call: call.name, answer: second.output_text, events, text }));
