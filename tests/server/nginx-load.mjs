// The load of the nginx three-replica test: REQUESTS completions through nginx, CONCURRENCY at a
// time, every third one streamed; once KILL_AFTER of them have completed, the replica with pid
// KILL_PID is killed (SIGKILL) while the others run on. Prints one JSON line: how many requests
// were sent, how many non-streamed ones failed (any status but 200, or no response), how many
// streams were cut (no [DONE] at the end) and how many failed before their first event.
// Environment: URL, REQUESTS, CONCURRENCY, KILL_AFTER, KILL_PID, MAX_TOKENS.
const url = process.env.URL;
const total = Number(process.env.REQUESTS ?? 120);
const concurrency = Number(process.env.CONCURRENCY ?? 12);
const killAfter = Number(process.env.KILL_AFTER ?? 30);
const killPid = Number(process.env.KILL_PID ?? 0);
const maxTokens = Number(process.env.MAX_TOKENS ?? 64);

const result = {
  requests: 0, ok: 0, non_streamed: 0, non_streamed_failed: 0, streamed: 0, streams_completed: 0,
  streams_cut: 0, streams_failed_before_first_event: 0, killed_after: null, errors: [],
};
let next = 0;
let completed = 0;

function note(e) {
  if (result.errors.length < 10) result.errors.push(String(e));
}

async function one(i) {
  const stream = i % 3 === 0;
  const body = JSON.stringify({
    prompt: `request ${i}: once upon a time`, max_tokens: maxTokens, temperature: 0, stream,
  });
  ++result.requests;
  if (stream) ++result.streamed; else ++result.non_streamed;
  let res;
  try {
    res = await fetch(`${url}/v1/completions`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body,
    });
  } catch (e) {
    note(e);
    if (stream) ++result.streams_failed_before_first_event; else ++result.non_streamed_failed;
    return;
  }
  if (!stream) {
    try {
      const j = await res.json();
      if (res.status === 200 && j.choices?.[0]?.finish_reason) ++result.ok;
      else { ++result.non_streamed_failed; note(`${res.status} ${JSON.stringify(j)}`); }
    } catch (e) {
      ++result.non_streamed_failed;
      note(e);
    }
    return;
  }
  if (res.status !== 200) {
    ++result.streams_failed_before_first_event;
    note(`stream status ${res.status}`);
    return;
  }
  let text = "";
  try {
    const decoder = new TextDecoder();
    for await (const part of res.body) text += decoder.decode(part, { stream: true });
  } catch (e) {
    note(e);
  }
  if (text.trimEnd().endsWith("data: [DONE]")) { ++result.streams_completed; ++result.ok; }
  else if (text.length === 0) ++result.streams_failed_before_first_event;
  else ++result.streams_cut;
}

async function worker() {
  while (next < total) {
    const i = next++;
    await one(i);
    ++completed;
    if (killPid && result.killed_after === null && completed >= killAfter) {
      result.killed_after = completed;
      process.kill(killPid, "SIGKILL");
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
console.log(JSON.stringify(result));
