// The server's Prometheus metrics (text exposition format 0.0.4): counters and histograms
// updated lock-free from the request threads and the Engine's scheduler thread, and the Engine's
// gauges read when /metrics is scraped.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "bitnet/engine.h"

namespace bitnet::server {

// Cumulative buckets with fixed upper bounds (seconds); observe() is wait-free.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // name_bucket{le="..."}, name_sum, name_count lines.
  void write(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // [bounds_.size() + 1], not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};  // the sum in nanoseconds (integer: exact and lock-free)
};

class Metrics {
 public:
  Metrics();

  // One response, by route ("/v1/completions", ...; "other" for unknown paths) and status.
  void count_request(const std::string& endpoint, int status);
  uint64_t requests(const std::string& endpoint, int status) const;

  std::atomic<uint64_t> prompt_tokens{0};       // prompt tokens of admitted requests
  std::atomic<uint64_t> generated_tokens{0};    // tokens generated, streamed or not
  std::atomic<uint64_t> client_disconnects{0};  // requests cancelled because the client left
  std::atomic<uint64_t> rejected_overload{0};   // 503: the queue was full
  Histogram time_to_first_token;                // submit until the first token was sampled
  Histogram inter_token;                        // between consecutive tokens of a request
  Histogram request_duration;                   // admitted generation requests, submit to result

  // The whole exposition: the counters above, then the Engine's gauges (when it is loaded).
  std::string render(const Engine* engine, bool ready, int64_t in_flight) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // guarded by mu_
};

}  // namespace bitnet::server
