#include "server/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace bitnet::server {
namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double v) {
  out += name + " " + number(v) + "\n";
}

void gauge(std::string& out, const std::string& name, const std::string& help, double v) {
  header(out, name, "gauge", help);
  sample(out, name, v);
}

void counter(std::string& out, const std::string& name, const std::string& help, double v) {
  header(out, name, "counter", help);
  sample(out, name, v);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
  const size_t b = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
  buckets_[b].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max(0.0, value) * 1e9), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum " + number(static_cast<double>(sum_ns_.load()) * 1e-9) + "\n";
  // The count is the +Inf bucket, so that the two agree even while observations race the scrape.
  out += name + "_count " + std::to_string(cumulative) + "\n";
}

Metrics::Metrics()
    : time_to_first_token({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      inter_token({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      request_duration({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

uint64_t Metrics::requests(const std::string& endpoint, int status) const {
  std::lock_guard lock(mu_);
  const auto it = requests_.find({endpoint, status});
  return it == requests_.end() ? 0 : it->second;
}

std::string Metrics::render(const Engine* engine, bool ready, int64_t in_flight) const {
  std::string out;
  out.reserve(8192);
  header(out, "bitnet_http_requests_total", "counter", "HTTP responses by endpoint and status.");
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : requests_) {
      out += "bitnet_http_requests_total{endpoint=\"" + key.first + "\",status=\"" +
             std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
    }
  }
  counter(out, "bitnet_prompt_tokens_total", "Prompt tokens of admitted generation requests.",
          static_cast<double>(prompt_tokens.load()));
  counter(out, "bitnet_generated_tokens_total", "Tokens generated.",
          static_cast<double>(generated_tokens.load()));
  counter(out, "bitnet_client_disconnects_total",
          "Generation requests cancelled because the client disconnected.",
          static_cast<double>(client_disconnects.load()));
  counter(out, "bitnet_rejected_overload_total",
          "Generation requests refused with 503 because the queue was full.",
          static_cast<double>(rejected_overload.load()));
  time_to_first_token.write(out, "bitnet_time_to_first_token_seconds",
                            "From admission to the first generated token.");
  inter_token.write(out, "bitnet_inter_token_latency_seconds",
                    "Between consecutive generated tokens of a request.");
  request_duration.write(out, "bitnet_request_duration_seconds",
                         "Generation requests from admission to their result.");
  gauge(out, "bitnet_ready", "1 when the model is loaded and the server accepts requests.",
        ready ? 1 : 0);
  gauge(out, "bitnet_requests_in_flight", "Generation requests admitted and not finished.",
        static_cast<double>(in_flight));
  if (engine) {
    const EngineStats s = engine->stats();
    const EngineInfo& info = engine->info();
    gauge(out, "bitnet_queue_depth", "Requests waiting for a slot in the batch.",
          static_cast<double>(s.requests_queued));
    gauge(out, "bitnet_requests_running", "Requests in the running batch.",
          static_cast<double>(s.requests_running));
    gauge(out, "bitnet_kv_pages_in_use", "KV cache pages holding positions.",
          static_cast<double>(s.kv_pages_in_use));
    gauge(out, "bitnet_kv_pages_peak", "The most KV cache pages held at once.",
          static_cast<double>(s.kv_pages_peak));
    gauge(out, "bitnet_kv_pages_total", "KV cache pages in the pool (0 before the first request).",
          static_cast<double>(s.kv_pages_total));
    gauge(out, "bitnet_kv_page_positions", "Positions per KV cache page.",
          static_cast<double>(info.kv_page_positions));
    gauge(out, "bitnet_max_concurrent_requests", "Requests decoded together (--parallel).",
          info.max_concurrent_requests);
    counter(out, "bitnet_engine_steps_total", "Forward steps run.", static_cast<double>(s.steps));
    counter(out, "bitnet_engine_step_tokens_total", "Tokens evaluated by the forward steps.",
            static_cast<double>(s.step_tokens));
    gauge(out, "bitnet_memory_bytes", "Weights, activations and KV pages in use.",
          static_cast<double>(s.current_bytes));
  }
  return out;
}

}  // namespace bitnet::server
