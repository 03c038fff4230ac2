// bitnet serve through the official OpenAI Node client (the `openai` npm package, pinned in
// package-lock.json): models.list, a chat completion, a streamed chat completion with usage, a
// text completion (streamed too), logprobs, and the client's error classes for a 400 and a 401.
// Run by openai-client.test.sh, which starts the server and sets BITNET_SERVE_URL, BITNET_MODEL_ID
// and BITNET_API_KEY.
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";

const baseURL = `${process.env.BITNET_SERVE_URL}/v1`;
const model = process.env.BITNET_MODEL_ID;
const client = new OpenAI({ baseURL, apiKey: process.env.BITNET_API_KEY, maxRetries: 0 });

const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Say something." },
];

test("models.list lists the served model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

test("chat completion with usage", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.completion_tokens, 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
});

test("streamed chat completion carries the same text, then the usage", async () => {
  const whole = await client.chat.completions.create({
    model, messages, max_tokens: 12, temperature: 0,
  });
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 12, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let role = null;
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    ++chunks;
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    const c = chunk.choices[0];
    role ??= c.delta.role ?? null;
    text += c.delta.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  assert.ok(chunks > 3);
  assert.equal(role, "assistant");
  assert.equal(finish, "length");
  assert.equal(text, whole.choices[0].message.content);
  assert.deepEqual(usage, whole.usage);
});

test("text completion, streamed and not", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6, temperature: 0 });
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 6);
  const stream = await client.completions.create({
    model, prompt: "Once upon a time", max_tokens: 6, temperature: 0, stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
  assert.equal(text, r.choices[0].text);
});

test("logprobs", async () => {
  const r = await client.chat.completions.create({
    model, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 4);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.equal(t.top_logprobs[0].token, t.token);
  }
});

test("errors reach the client's error classes", async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages, n: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "n",
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages, max_tokens: 1 << 20 }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === "context_length_exceeded",
  );
  const wrong = new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(
    wrong.models.list(),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
});
