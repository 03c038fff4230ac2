#include "core/perf-monitor.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace bitnet {
namespace {

constexpr std::array<std::string_view, PerfMonitor::kOps> kNames = {
    "embed",       "norm",     "matmul_qkv", "matmul_attn_out", "matmul_gate_up",
    "matmul_down", "rope_kv",  "attention",  "ffn_act",         "residual",
    "lm_head",     "sampling", "tokenize",   "detokenize"};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// The p-quantile (nearest rank) of sorted v; 0 for an empty v.
double quantile(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

std::string_view perf_op_name(PerfOp op) {
  const auto i = static_cast<size_t>(op);
  return i < kNames.size() ? kNames[i] : std::string_view("?");
}

PerfMonitor::PerfMonitor(size_t series_capacity)
    : capacity_(series_capacity), ring_(series_capacity * kOps, 0) {}

void PerfMonitor::end_step(int64_t tokens) {
  if (capacity_ > 0) {
    const size_t row = static_cast<size_t>(steps_) % capacity_;
    std::copy(step_.begin(), step_.end(), ring_.begin() + static_cast<ptrdiff_t>(row * kOps));
  }
  step_.fill(0);
  ++steps_;
  tokens_ += tokens;
}

void PerfMonitor::reset() {
  total_ns_.fill(0);
  calls_.fill(0);
  step_.fill(0);
  steps_ = tokens_ = 0;
}

size_t PerfMonitor::series_size() const {
  return std::min(static_cast<size_t>(steps_), capacity_);
}

int64_t PerfMonitor::series_ns(size_t i, PerfOp op) const {
  if (i >= series_size()) throw std::out_of_range("PerfMonitor::series_ns: step out of range");
  const size_t first = static_cast<size_t>(steps_) - series_size();
  const size_t row = (first + i) % capacity_;
  return ring_[row * kOps + static_cast<size_t>(op)];
}

void PerfMonitor::write_json(std::ostream& out, bool series) const {
  int64_t all = 0;
  for (int64_t t : total_ns_) all += t;
  out << "{\"steps\": " << steps_ << ", \"tokens\": " << tokens_
      << ", \"total_ms\": " << fmt(static_cast<double>(all) * 1e-6) << ", \"ops\": {";
  const size_t n = series_size();
  bool first = true;
  for (size_t o = 0; o < kOps; ++o) {
    if (calls_[o] == 0) continue;
    const auto op = static_cast<PerfOp>(o);
    std::vector<double> per_step;
    for (size_t i = 0; i < n; ++i) per_step.push_back(static_cast<double>(series_ns(i, op)) * 1e-3);
    std::sort(per_step.begin(), per_step.end());
    double mean = 0;
    for (double v : per_step) mean += v;
    if (!per_step.empty()) mean /= static_cast<double>(per_step.size());
    out << (first ? "" : ", ") << "\"" << kNames[o] << "\": {\"calls\": " << calls_[o]
        << ", \"total_ms\": " << fmt(static_cast<double>(total_ns_[o]) * 1e-6) << ", \"share\": "
        << fmt(all > 0 ? static_cast<double>(total_ns_[o]) / static_cast<double>(all) : 0)
        << ", \"per_step_us\": {\"mean\": " << fmt(mean)
        << ", \"p50\": " << fmt(quantile(per_step, 0.50))
        << ", \"p95\": " << fmt(quantile(per_step, 0.95))
        << ", \"p99\": " << fmt(quantile(per_step, 0.99)) << "}}";
    first = false;
  }
  out << "}";
  if (series) {
    out << ", \"series\": {";
    first = true;
    for (size_t o = 0; o < kOps; ++o) {
      if (calls_[o] == 0) continue;
      out << (first ? "" : ", ") << "\"" << kNames[o] << "\": [";
      for (size_t i = 0; i < n; ++i) {
        out << (i ? ", " : "")
            << fmt(static_cast<double>(series_ns(i, static_cast<PerfOp>(o))) * 1e-3);
      }
      out << "]";
      first = false;
    }
    out << "}";
  }
  out << "}";
}

}  // namespace bitnet
