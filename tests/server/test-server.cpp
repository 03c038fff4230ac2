// The HTTP server against a real Engine on tiny-1m, on an ephemeral loopback port: every endpoint
// and its shapes, streaming, readiness, authentication, limits, admission (503 when full), client
// disconnects (the request is cancelled and its KV pages return), 64 concurrent streams equal to
// the same requests served alone, a corpus of hostile requests, slow and stalled clients, a
// connection flood, metrics, and graceful shutdown.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bitnet/engine.h"
#include "server-test-util.h"
#include "server/completion.h"
#include "server/server.h"
#include "server/socket-util.h"

namespace bitnet::test {
namespace {

using server::Server;
using server::ServerOptions;

class ServerTest : public ::testing::Test {
 protected:
  void start(int parallel = 4, int max_queue = 64,
             const std::function<void(ServerOptions&)>& tweak = {}, int64_t context = 512) {
    EngineConfig c;
    c.threads = 2;
    c.context_size = context;
    c.max_concurrent_requests = parallel;
    c.max_batch_tokens = std::max(256, parallel);
    c.model_cache = &cache_;
    engine_ = std::make_unique<Engine>(tiny_model(), c);
    ServerOptions o;
    o.port = 0;
    o.max_queue = max_queue;
    o.max_concurrent = parallel;
    o.model_id = "tiny-1m";
    if (tweak) tweak(o);
    server_ = std::make_unique<Server>(o);
    port_ = server_->start();
    server_->set_engine(engine_.get());
  }
  void TearDown() override {
    if (server_) server_->shutdown(0);
    server_.reset();
    engine_.reset();
  }
  // Nothing admitted, no KV page held.
  bool idle() const {
    return server_->in_flight() == 0 && engine_->stats().kv_pages_in_use == 0 &&
           engine_->stats().requests_pending == 0;
  }

  ModelCache cache_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

std::string completion_body(const std::string& prompt, int max_tokens, bool stream = false,
                            const std::string& extra = "") {
  json j = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
  if (!extra.empty()) j.update(json::parse(extra));
  return j.dump();
}

std::string chat_body(const std::string& user, int max_tokens, bool stream = false,
                      const std::string& extra = "") {
  json j = {
      {"model", "tiny-1m"},
      {"messages",
       {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", user}}}},
      {"max_tokens", max_tokens},
      {"temperature", 0},
      {"stream", stream}};
  if (!extra.empty()) j.update(json::parse(extra));
  return j.dump();
}

// The stream encoder's text chunks (built around a marker, without a JSON object) are exactly
// the chunk_body events, for both shapes, with and without usage, for awkward text.
TEST(StreamEncoder, TextChunksAreTheChunkBodies) {
  for (const server::ApiKind kind : {server::ApiKind::Chat, server::ApiKind::Completion}) {
    for (const bool usage : {false, true}) {
      const server::ResponseHead head{kind, "id-1", 42, "m\"odel"};
      auto piece = [](int32_t) { return std::string("p"); };
      server::StreamEncoder enc(head, usage, 0, piece);
      for (const std::string text : {"plain", "quote \" back\\slash", "line\nbreak\ttab",
                                     "\x01control", "cut \xE2\x82", "\xC3\xA9t\xC3\xA9", "@@"}) {
        server::Chunk c;
        c.text = text;
        EXPECT_EQ(enc.text(text, {}, {}),
                  "data: " + server::chunk_body(head, c, usage, piece) + "\n\n")
            << text;
      }
      EXPECT_EQ(enc.text("", {}, {}), "");
    }
  }
}

TEST_F(ServerTest, HealthIs503UntilTheEngineIsSetThen200) {
  ServerOptions o;
  o.port = 0;
  Server s(o);
  const int port = s.start();
  Reply h = get(port, "/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.j()["status"], "loading");
  Reply c = post(port, "/v1/completions", completion_body("Hi", 2));
  EXPECT_EQ(c.status, 503);
  EXPECT_EQ(c.j()["error"]["code"], "loading");
  EXPECT_EQ(c.header("Retry-After"), "1");
  EXPECT_EQ(get(port, "/v1/models").status, 503);
  EXPECT_EQ(get(port, "/metrics").status, 200);  // scrapeable while loading

  EngineConfig ec;
  ec.threads = 2;
  ec.model_cache = &cache_;
  Engine e(tiny_model(), ec);
  s.set_engine(&e);
  h = get(port, "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.j()["status"], "ok");
  s.shutdown(0);
}

// The chat completion is the Engine's own generation from the conversation through the template.
TEST_F(ServerTest, ChatCompletionIsTheEnginesGenerationThroughTheTemplate) {
  start();
  const Reply r = post(port_, "/v1/chat/completions", chat_body("Hello there", 12));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  const json j = r.j();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny-1m");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  const std::vector<int32_t> prompt = engine_->tokenize(
      engine_->apply_chat_template({{"system", "Be brief."}, {"user", "Hello there"}}));
  GenerateOptions o;
  o.temperature = 0;
  o.max_tokens = 12;
  const GenerateResult direct = engine_->generate(TokenPrompt{prompt}, o);
  EXPECT_EQ(j["choices"][0]["message"]["content"], direct.text);
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["usage"]["total_tokens"], prompt.size() + 12);
}

TEST_F(ServerTest, StreamedCompletionCarriesTheSameTextThenUsageThenDone) {
  start();
  const Reply plain = post(port_, "/v1/completions", completion_body("Once upon", 20));
  ASSERT_EQ(plain.status, 200) << plain.body;
  const std::string text = plain.j()["choices"][0]["text"];
  const Reply s = post_stream(
      port_, "/v1/completions",
      completion_body("Once upon", 20, true, R"({"stream_options": {"include_usage": true}})"));
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(s.header("Content-Type"), "text/event-stream");
  const std::vector<std::string> events = sse_data(s.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  const json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 20);
  EXPECT_EQ(usage["usage"]["prompt_tokens"], plain.j()["usage"]["prompt_tokens"]);
  const json last = json::parse(events[events.size() - 3]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  for (size_t i = 0; i + 3 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "text_completion");
    EXPECT_TRUE(e["choices"][0]["finish_reason"].is_null());
    EXPECT_TRUE(e["usage"].is_null());
  }
  EXPECT_EQ(stream_text(s.body), text);
}

TEST_F(ServerTest, StreamedChatOpensWithTheRoleAndEndsWithFinishReason) {
  start();
  const Reply plain = post(port_, "/v1/chat/completions", chat_body("Hi", 10));
  const Reply s = post_stream(port_, "/v1/chat/completions", chat_body("Hi", 10, true));
  ASSERT_EQ(s.status, 200);
  const std::vector<std::string> events = sse_data(s.body);
  ASSERT_GE(events.size(), 3u);
  const json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(first.contains("usage"));  // only with stream_options.include_usage
  const json last = json::parse(events[events.size() - 2]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(stream_text(s.body), plain.j()["choices"][0]["message"]["content"]);
  for (const std::string& e : events) {
    if (e != "[DONE]") {
      EXPECT_EQ(json::parse(e)["id"], first["id"]);
    }
  }
}

TEST_F(ServerTest, StopStringsEndTheTextAndAreNotIncluded) {
  start();
  const std::string full =
      post(port_, "/v1/completions", completion_body("Once upon", 20)).j()["choices"][0]["text"];
  ASSERT_GT(full.size(), 30u);
  const std::string stop = full.substr(20, 5);
  const std::string expected = full.substr(0, full.find(stop));
  const json body = json::parse(
      completion_body("Once upon", 20, false, json({{"stop", {"NEVER", stop}}}).dump()));
  const Reply r = post(port_, "/v1/completions", body.dump());
  EXPECT_EQ(r.j()["choices"][0]["text"], expected);
  EXPECT_EQ(r.j()["choices"][0]["finish_reason"], "stop");
  const Reply s =
      post_stream(port_, "/v1/completions",
                  completion_body("Once upon", 20, true, json({{"stop", stop}}).dump()));
  EXPECT_EQ(stream_text(s.body), expected);
}

TEST_F(ServerTest, SeedMakesSamplingReproducible) {
  start();
  auto sampled = [&](int seed) {
    return post(port_, "/v1/completions",
                json({{"prompt", "abc"}, {"max_tokens", 16}, {"seed", seed}}).dump())
        .j()["choices"][0]["text"]
        .get<std::string>();
  };
  EXPECT_EQ(sampled(5), sampled(5));
  EXPECT_NE(sampled(5), sampled(6));
}

TEST_F(ServerTest, LogprobsInChatAndCompletions) {
  start();
  const Reply c = post(port_, "/v1/chat/completions",
                       chat_body("Hi", 6, false, R"({"logprobs": true, "top_logprobs": 3})"));
  ASSERT_EQ(c.status, 200) << c.body;
  const json cj = c.j();
  const json& content = cj["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 6u);
  std::string joined;
  for (const json& t : content) {
    joined += t["token"].get<std::string>();
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_EQ(t["top_logprobs"][0]["logprob"], t["logprob"]);
  }
  EXPECT_EQ(joined, cj["choices"][0]["message"]["content"]);

  const Reply p =
      post(port_, "/v1/completions", completion_body("Hi", 5, false, R"({"logprobs": 2})"));
  const json pj = p.j();
  const json& lp = pj["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"].size(), 5u);
  EXPECT_EQ(lp["token_logprobs"].size(), 5u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(lp["text_offset"][0], 0);

  // Streamed: every token's logprob arrives in some chunk.
  const Reply s =
      post_stream(port_, "/v1/chat/completions", chat_body("Hi", 6, true, R"({"logprobs": true})"));
  size_t streamed = 0;
  for (const std::string& e : sse_data(s.body)) {
    if (e == "[DONE]") continue;
    const json ej = json::parse(e);
    const json& l = ej["choices"][0]["logprobs"];
    if (!l.is_null()) streamed += l["content"].size();
  }
  EXPECT_EQ(streamed, 6u);
}

TEST_F(ServerTest, ModelsTokenizeDetokenize) {
  start();
  const json m = get(port_, "/v1/models").j();
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "tiny-1m");
  EXPECT_EQ(get(port_, "/models").status, 200);

  const json t = post(port_, "/tokenize", R"({"content": "Hi<|eot_id|>"})").j();
  EXPECT_EQ(t["tokens"], json(engine_->tokenize("Hi<|eot_id|>", false, true)));
  const json tb = post(port_, "/tokenize", R"({"content": "Hi", "add_special": true})").j();
  EXPECT_EQ(tb["tokens"].size(), 3u);  // BOS
  const json tp = post(port_, "/tokenize", R"({"content": "Hi", "with_pieces": true})").j();
  EXPECT_EQ(tp["tokens"][1]["piece"], "i");
  const json d = post(port_, "/detokenize", json({{"tokens", t["tokens"]}}).dump()).j();
  EXPECT_EQ(d["content"], "Hi<|eot_id|>");
  const Reply bad = post(port_, "/detokenize", R"({"tokens": [99999]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.j()["error"]["param"], "tokens");
}

TEST_F(ServerTest, RequestsThatCanNeverFitAre400) {
  start();  // context 512
  Reply r = post(port_, "/v1/completions", completion_body("Hi", 600));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(r.j()["error"]["param"], "max_tokens");
  EXPECT_NE(r.j()["error"]["message"].get<std::string>().find("512"), std::string::npos);
  r = post(port_, "/v1/chat/completions", chat_body(std::string(600, 'x'), 1));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["param"], "messages");
  EXPECT_EQ(r.j()["error"]["code"], "context_length_exceeded");
  r = post(port_, "/v1/completions", R"({"prompt": [1, 2, 5000], "max_tokens": 2})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.j()["error"]["param"], "prompt");
  // Token-id prompts work (no BOS added); chat without max_tokens gets the rest of the context.
  r = post(port_, "/v1/completions", R"({"prompt": [4096, 72, 105], "max_tokens": 3})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.j()["usage"]["prompt_tokens"], 3);
  EXPECT_TRUE(idle());
}

TEST_F(ServerTest, ApiKeyIsRequiredExceptForHealthAndMetrics) {
  start(4, 64, [](ServerOptions& o) { o.api_key = "sekret-key"; });
  const std::string body = completion_body("Hi", 2);
  Reply r = post(port_, "/v1/completions", body);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.j()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(r.header("WWW-Authenticate"), "Bearer");
  for (const char* wrong : {"Bearer sekret-kez", "Bearer sekret", "Bearer sekret-key-longer",
                            "sekret-key", "Basic sekret-key", "Bearer "}) {
    EXPECT_EQ(post(port_, "/v1/completions", body, {{"Authorization", wrong}}).status, 401)
        << wrong;
  }
  EXPECT_EQ(get(port_, "/v1/models", {{"Authorization", "Bearer nope"}}).status, 401);
  EXPECT_EQ(post(port_, "/v1/completions", body, {{"Authorization", "Bearer sekret-key"}}).status,
            200);
  EXPECT_EQ(get(port_, "/health").status, 200);
  EXPECT_EQ(get(port_, "/metrics").status, 200);
}

TEST_F(ServerTest, BodiesOverTheLimitAre413) {
  start(4, 64, [](ServerOptions& o) { o.max_body_bytes = 4096; });
  const Reply r = post(port_, "/v1/completions", completion_body(std::string(5000, 'a'), 2));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.j()["error"]["code"], "request_too_large");
  // Just under the limit (an ignored field makes up the size).
  const std::string under =
      completion_body("Hi", 2, false, json({{"user", std::string(3800, 'u')}}).dump());
  ASSERT_LT(under.size(), 4096u);
  EXPECT_EQ(post(port_, "/v1/completions", under).status, 200);
}

// One running, one queued: the third is refused at once with Retry-After, and is served once
// there is room.
TEST_F(ServerTest, AFullQueueIs503WithRetryAfter) {
  start(1, 1, {}, 2048);  // room for 1 running + 1 queued
  // The Engine is held by a request of the test's own (its callback waits), so the server's two
  // stay admitted for as long as the test needs.
  std::atomic<bool> holding{false}, release{false};
  GenerateOptions hold;
  hold.max_tokens = 4;
  auto blocker = engine_->submit("hold", hold, [&](std::string_view) {
    holding.store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return true;
  });
  ASSERT_TRUE(eventually([&] { return holding.load(); }));
  auto a = std::async(std::launch::async, [&] {
    return post_stream(port_, "/v1/completions", completion_body("x", 8, true));
  });
  auto b = std::async(std::launch::async,
                      [&] { return post(port_, "/v1/completions", completion_body("y", 2)); });
  ASSERT_TRUE(eventually([&] { return engine_->stats().requests_queued == 2; }));
  EXPECT_EQ(server_->in_flight(), 2);
  const Reply r = post(port_, "/v1/completions", completion_body("Hi", 2));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(r.j()["error"]["code"], "server_overloaded");
  EXPECT_EQ(server_->metrics().rejected_overload.load(), 1u);
  release.store(true);
  blocker.get();
  EXPECT_EQ(a.get().status, 200);
  EXPECT_EQ(b.get().status, 200);
  EXPECT_EQ(post(port_, "/v1/completions", completion_body("Hi", 2)).status, 200);
}

// A client that leaves mid-stream or while waiting for a whole response has its request
// cancelled within a step or two: far fewer tokens than asked are generated, and every KV page
// comes back.
TEST_F(ServerTest, ClientsThatDisconnectAreCancelledAndTheirPagesReturn) {
  start(4, 64, {}, 2048);
  const uint64_t before = server_->metrics().generated_tokens.load();
  const Reply s = post_stream(port_, "/v1/completions", completion_body("Hi", 2000, true),
                              [](const std::string& so_far) { return so_far.size() < 1000; });
  EXPECT_EQ(s.status, 200);
  ASSERT_TRUE(eventually([&] { return idle(); }));
  EXPECT_EQ(server_->metrics().client_disconnects.load(), 1u);
  const uint64_t streamed = server_->metrics().generated_tokens.load() - before;
  EXPECT_LT(streamed, 1000u) << "the stream was not cancelled";

  {  // Non-streamed: the client closes right after sending.
    RawConnection c(port_);
    const std::string body = completion_body("Hi", 2000);
    ASSERT_TRUE(c.send_all("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body));
    ASSERT_TRUE(eventually([&] { return server_->in_flight() == 1; }));
    c.reset();
  }
  ASSERT_TRUE(eventually([&] { return idle(); }));
  EXPECT_EQ(server_->metrics().client_disconnects.load(), 2u);
  EXPECT_LT(server_->metrics().generated_tokens.load() - before, 2000u);
  EXPECT_TRUE(eventually([&] { return server_->metrics().requests("/v1/completions", 499) == 1; }));
  // The server keeps serving.
  EXPECT_EQ(post(port_, "/v1/completions", completion_body("Hi", 3)).status, 200);
  EXPECT_TRUE(idle());
}

// 64 concurrent streaming clients (32 decoded together, the rest queued): no errors, and each
// stream's text is exactly that of the same request served alone.
TEST_F(ServerTest, SixtyFourConcurrentStreamsEqualTheSameRequestsServedAlone) {
  start(32, 64);
  constexpr int kClients = 64;
  auto body = [](int i, bool stream) {
    return chat_body("client " + std::to_string(i) + " asks: what is " + std::to_string(i * 7), 24,
                     stream);
  };
  std::vector<std::string> alone(kClients);
  for (int i = 0; i < kClients; ++i) {
    const Reply r = post(port_, "/v1/chat/completions", body(i, false));
    ASSERT_EQ(r.status, 200) << r.body;
    alone[static_cast<size_t>(i)] = r.j()["choices"][0]["message"]["content"];
  }
  std::vector<Reply> streamed(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      streamed[static_cast<size_t>(i)] = post_stream(port_, "/v1/chat/completions", body(i, true));
    });
  }
  for (std::thread& t : clients) t.join();
  std::set<std::string> distinct;
  for (int i = 0; i < kClients; ++i) {
    const Reply& r = streamed[static_cast<size_t>(i)];
    ASSERT_EQ(r.status, 200) << "client " << i << ": " << r.body;
    ASSERT_EQ(sse_data(r.body).back(), "[DONE]") << "client " << i;
    EXPECT_EQ(stream_text(r.body), alone[static_cast<size_t>(i)]) << "client " << i;
    distinct.insert(alone[static_cast<size_t>(i)]);
  }
  EXPECT_GT(distinct.size(), 32u);  // the prompts lead to different texts
  EXPECT_GT(engine_->stats().step_tokens, engine_->stats().steps);  // batched
  EXPECT_TRUE(eventually([&] { return idle(); }));
}

struct Hostile {
  std::string name;
  std::string raw;  // the bytes sent
  int status;       // expected
};

std::string http_post(const std::string& path, const std::string& body,
                      const std::string& headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// At least 30 malformed or hostile requests, each answered with a 4xx (an OpenAI-shaped error
// where the request got that far), and the server healthy after all of them.
TEST_F(ServerTest, HostileRequestCorpusGets4xxAndTheServerStaysHealthy) {
  start(4, 64, [](ServerOptions& o) {
    o.max_body_bytes = 64 * 1024;
    o.io_timeout_s = 2;
  });
  const std::string chat = "/v1/chat/completions", comp = "/v1/completions";
  const std::string msg = R"("messages":[{"role":"user","content":"hi"}])";
  const std::vector<Hostile> corpus = {
      {"malformed JSON", http_post(chat, "{\"messages\": [}"), 400},
      {"truncated JSON", http_post(chat, "{\"messages\": [{\"role\": \"us"), 400},
      {"not an object", http_post(chat, "[1,2,3]"), 400},
      {"empty body", http_post(chat, ""), 400},
      {"messages wrong type", http_post(chat, R"({"messages": "hi"})"), 400},
      {"unknown role", http_post(chat, R"({"messages":[{"role":"wizard","content":"x"}]})"), 400},
      {"tool role", http_post(chat, R"({"messages":[{"role":"tool","content":"x"}]})"), 400},
      {"empty messages", http_post(chat, R"({"messages":[]})"), 400},
      {"message not an object", http_post(chat, R"({"messages":[null]})"), 400},
      {"image content",
       http_post(
           chat,
           R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})"),
       400},
      {"max_tokens string", http_post(chat, "{" + msg + R"(,"max_tokens":"10"})"), 400},
      {"max_tokens negative", http_post(chat, "{" + msg + R"(,"max_tokens":-5})"), 400},
      {"max_tokens huge", http_post(chat, "{" + msg + R"(,"max_tokens":99999999999})"), 400},
      {"temperature out of range", http_post(chat, "{" + msg + R"(,"temperature":9})"), 400},
      {"number overflow", http_post(chat, "{" + msg + R"(,"temperature":1e400})"), 400},
      {"n = 4", http_post(chat, "{" + msg + R"(,"n":4})"), 400},
      {"tools", http_post(chat, "{" + msg + R"(,"tools":[{"type":"function"}]})"), 400},
      {"stop list too long", http_post(chat, "{" + msg + R"(,"stop":["a","b","c","d","e","f"]})"),
       400},
      {"invalid UTF-8 in JSON",
       http_post(chat, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"), 400},
      {"NUL in JSON", http_post(chat, std::string("{\"messages\":\0}", 14)), 400},
      {"deep nesting", http_post(chat, std::string(5000, '[') + std::string(5000, ']')), 400},
      {"prompt list", http_post(comp, R"({"prompt":["a","b"]})"), 400},
      {"prompt token out of range", http_post(comp, R"({"prompt":[1,2,99999]})"), 400},
      {"prompt negative token", http_post(comp, R"({"prompt":[-1]})"), 400},
      {"echo", http_post(comp, R"({"prompt":"x","echo":true})"), 400},
      {"context overflow", http_post(comp, R"({"prompt":"x","max_tokens":100000})"), 400},
      {"tokenize without content", http_post("/tokenize", "{}"), 400},
      {"detokenize bad ids", http_post("/detokenize", R"({"tokens":["a"]})"), 400},
      {"body over the limit", http_post(comp, "{\"prompt\":\"" + std::string(70000, 'a') + "\"}"),
       413},
      {"huge Content-Length",
       "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n{}", 413},
      {"unknown path", "GET /v2/secret HTTP/1.1\r\nHost: t\r\n\r\n", 404},
      {"path traversal", "GET /../../etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n", 404},
      {"GET on a POST endpoint", "GET /v1/chat/completions HTTP/1.1\r\nHost: t\r\n\r\n", 405},
      {"DELETE on models", "DELETE /v1/models HTTP/1.1\r\nHost: t\r\n\r\n", 405},
      {"garbage request line",
       std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15), 400},
      {"unknown method", "BREW /v1/models HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      {"header line over 8 KiB",
       "GET /health HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n", 400},
      {"bad chunked body",
       "POST /v1/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
       "chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
       400},
  };
  ASSERT_GE(corpus.size(), 30u);
  for (const Hostile& h : corpus) {
    RawConnection c(port_);
    ASSERT_TRUE(c.connected());
    c.send_all(h.raw);
    // Every error body is OpenAI's JSON, which ends with "}}".
    const std::string response = c.read(5000, "}}");
    const int status = status_of(response);
    EXPECT_EQ(status, h.status) << h.name << ": " << response.substr(0, 300);
    EXPECT_GE(status, 400) << h.name;
    EXPECT_LT(status, 500) << h.name;
    const size_t start = response.find("{\"error\"");
    ASSERT_NE(start, std::string::npos) << h.name << ": " << response.substr(0, 300);
    const json e = json::parse(response.substr(start), nullptr, false);
    ASSERT_FALSE(e.is_discarded()) << h.name << ": " << response.substr(start);
    EXPECT_TRUE(e["error"].contains("message") && e["error"].contains("type") &&
                e["error"].contains("param") && e["error"].contains("code"))
        << h.name;
  }
  // Healthy: readiness, a real request, nothing left running.
  EXPECT_EQ(get(port_, "/health").status, 200);
  EXPECT_EQ(post(port_, "/v1/chat/completions", chat_body("Hi", 4)).status, 200);
  EXPECT_TRUE(eventually([&] { return idle(); }));
}

// A client that connects and sends nothing, or stops half-way through its body, is dropped after
// the I/O timeout; one that stops reading its stream has the request cancelled when a write
// times out. Other clients are served meanwhile.
TEST_F(ServerTest, SlowAndStalledClientsAreDroppedAfterTheTimeout) {
  start(
      4, 64,
      [](ServerOptions& o) {
        o.io_timeout_s = 1;
        o.send_buffer_bytes = 16 * 1024;
      },
      2048);
  RawConnection silent(port_);
  RawConnection half(port_);
  ASSERT_TRUE(half.send_all(
      "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"prompt\":"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(post(port_, "/v1/completions", completion_body("Hi", 4)).status, 200);
  silent.read(4000);
  half.read(4000);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(silent.peer_closed());
  EXPECT_TRUE(half.peer_closed());
  EXPECT_LT(waited, 3.5);

  // A stream nobody reads: 2000 events of about 150 bytes fill its 4 KiB receive buffer and the
  // server's 16 KiB send buffer long before the end.
  RawConnection reader(port_, 4096);
  const std::string body = completion_body("Hi", 2000, true);
  ASSERT_TRUE(reader.send_all("POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body));
  ASSERT_TRUE(eventually([&] { return server_->in_flight() == 1; }));
  // The write that cannot proceed times out after 1 s and the connection is dropped (the request
  // is cancelled if it is still generating by then).
  EXPECT_TRUE(eventually([&] { return server_->metrics().client_disconnects.load() == 1; }, 10000));
  EXPECT_TRUE(eventually([&] { return idle(); }));
  const std::string got = reader.read(5000);  // what the buffers held, then the end
  EXPECT_TRUE(reader.peer_closed());
  EXPECT_LT(got.size(), 100000u);  // of about 300 KB
  EXPECT_EQ(get(port_, "/health").status, 200);
}

// Far more connections at once than HTTP threads and queue slots: every one is answered, with
// 200 or 503 + Retry-After, and the server is healthy afterwards.
TEST_F(ServerTest, AConnectionFloodGets200Or503AndNothingHangs) {
  start(2, 2);
  constexpr int kFlood = 150;
  std::vector<int> status(kFlood, 0);
  std::vector<std::string> retry(kFlood);
  std::vector<std::thread> threads;
  for (int i = 0; i < kFlood; ++i) {
    threads.emplace_back([&, i] {
      auto c = client(port_);
      const auto res = c.Post("/v1/completions", completion_body("flood", 16), "application/json");
      if (!res) {
        retry[static_cast<size_t>(i)] = httplib::to_string(res.error());
        return;
      }
      status[static_cast<size_t>(i)] = res->status;
      retry[static_cast<size_t>(i)] = res->get_header_value("Retry-After");
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0, busy = 0;
  for (int i = 0; i < kFlood; ++i) {
    const int s = status[static_cast<size_t>(i)];
    EXPECT_TRUE(s == 200 || s == 503)
        << "request " << i << ": " << s << " " << retry[static_cast<size_t>(i)];
    ok += s == 200;
    if (s == 503) {
      ++busy;
      EXPECT_EQ(retry[static_cast<size_t>(i)], "1");
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_EQ(ok + busy, kFlood);
  EXPECT_EQ(get(port_, "/health").status, 200);
  EXPECT_TRUE(eventually([&] { return idle(); }));
}

// Prometheus text: requests by endpoint and status, token counters that agree with the usage the
// responses reported, the latency histograms, and the Engine's gauges.
TEST_F(ServerTest, MetricsCountRequestsTokensAndLatencies) {
  start();
  int64_t prompt = 0, completion = 0;
  for (int i = 0; i < 3; ++i) {
    const json u = post(port_, "/v1/completions", completion_body("Hi", 5 + i)).j()["usage"];
    prompt += u["prompt_tokens"].get<int64_t>();
    completion += u["completion_tokens"].get<int64_t>();
  }
  post_stream(port_, "/v1/chat/completions", chat_body("Hi", 4, true));
  completion += 4;
  prompt += static_cast<int64_t>(
      engine_->tokenize(engine_->apply_chat_template({{"system", "Be brief."}, {"user", "Hi"}}))
          .size());
  post(port_, "/v1/completions", "{");
  get(port_, "/nowhere");
  const Reply m = get(port_, "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  // name{labels} value
  std::map<std::string, double> v;
  std::set<std::string> types;
  size_t pos = 0;
  while (pos < m.body.size()) {
    const size_t nl = m.body.find('\n', pos);
    const std::string line = m.body.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("# TYPE ", 0) == 0) types.insert(line.substr(7));
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    v[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  EXPECT_EQ(v["bitnet_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"], 3);
  EXPECT_EQ(v["bitnet_http_requests_total{endpoint=\"/v1/completions\",status=\"400\"}"], 1);
  EXPECT_EQ(v["bitnet_http_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}"], 1);
  EXPECT_EQ(v["bitnet_http_requests_total{endpoint=\"other\",status=\"404\"}"], 1);
  EXPECT_EQ(v["bitnet_prompt_tokens_total"], prompt);
  EXPECT_EQ(v["bitnet_generated_tokens_total"], completion);
  EXPECT_EQ(v["bitnet_time_to_first_token_seconds_count"], 4);
  EXPECT_EQ(v["bitnet_inter_token_latency_seconds_count"], completion - 4);
  EXPECT_EQ(v["bitnet_time_to_first_token_seconds_bucket{le=\"+Inf\"}"], 4);
  EXPECT_GT(v["bitnet_time_to_first_token_seconds_sum"], 0);
  EXPECT_EQ(v["bitnet_request_duration_seconds_count"], 4);
  EXPECT_EQ(v["bitnet_ready"], 1);
  EXPECT_EQ(v["bitnet_queue_depth"], 0);
  EXPECT_EQ(v["bitnet_requests_running"], 0);
  EXPECT_EQ(v["bitnet_kv_pages_in_use"], 0);
  EXPECT_GE(v["bitnet_kv_pages_peak"], 1);
  EXPECT_EQ(v["bitnet_kv_pages_total"], 4 * 512 / 64);
  EXPECT_TRUE(types.count("bitnet_time_to_first_token_seconds histogram"));
  EXPECT_TRUE(types.count("bitnet_inter_token_latency_seconds histogram"));
  EXPECT_TRUE(types.count("bitnet_http_requests_total counter"));
  EXPECT_TRUE(types.count("bitnet_kv_pages_in_use gauge"));
  // Buckets are cumulative.
  double last = 0;
  for (const auto& [k, x] : v) {
    if (k.rfind("bitnet_inter_token_latency_seconds_bucket", 0) != 0) continue;
    (void)k;
    EXPECT_GE(x, 0);
    last = std::max(last, x);
  }
  EXPECT_EQ(last, completion - 4);
}

// Shutdown stops accepting at once, lets running streams finish within the grace period, and
// returns when they are done.
TEST_F(ServerTest, ShutdownStopsAcceptingAndLetsRunningRequestsFinish) {
  start(4, 64, {}, 2048);
  std::vector<std::future<Reply>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(std::async(std::launch::async, [&] {
      return post_stream(port_, "/v1/completions", completion_body("Hi", 400, true));
    }));
  }
  ASSERT_TRUE(eventually([&] { return server_->in_flight() == 3; }));
  std::thread stopper([&] { server_->shutdown(30); });
  ASSERT_TRUE(eventually([&] { return !RawConnection(port_).connected(); }, 2000))
      << "still accepting";
  for (auto& f : streams) {
    const Reply r = f.get();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(sse_data(r.body).back(), "[DONE]");
    EXPECT_EQ(json::parse(sse_data(r.body).rbegin()[1])["choices"][0]["finish_reason"], "length");
  }
  stopper.join();
  EXPECT_EQ(server_->in_flight(), 0);
  EXPECT_EQ(engine_->stats().kv_pages_in_use, 0u);
}

// Past the grace period the running requests are cancelled: a stream ends with an error event
// (no [DONE]), a client waiting for a whole response gets 503.
TEST_F(ServerTest, ShutdownCancelsWhatOutlivesTheGracePeriod) {
  start(4, 64, {}, 2048);
  // Slowed down by a stalled reader is not needed: 2000 tokens take longer than 0.2 s.
  auto s = std::async(std::launch::async, [&] {
    return post_stream(port_, "/v1/completions", completion_body("Hi", 2000, true));
  });
  auto w = std::async(std::launch::async,
                      [&] { return post(port_, "/v1/completions", completion_body("Hi", 2000)); });
  ASSERT_TRUE(eventually([&] { return server_->in_flight() == 2; }));
  server_->shutdown(0.2);
  const Reply stream = s.get(), whole = w.get();
  EXPECT_EQ(stream.status, 200);
  const std::vector<std::string> events = sse_data(stream.body);
  ASSERT_FALSE(events.empty());
  EXPECT_NE(events.back(), "[DONE]");
  EXPECT_EQ(json::parse(events.back())["error"]["code"], "shutting_down");
  EXPECT_EQ(whole.status, 503);
  EXPECT_EQ(whole.j()["error"]["code"], "shutting_down");
  EXPECT_EQ(engine_->stats().kv_pages_in_use, 0u);
}

}  // namespace
}  // namespace bitnet::test
