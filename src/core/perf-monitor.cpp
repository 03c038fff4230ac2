#include "core/perf-monitor.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace bitnet {
namespace {

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

double perf_ns_per_tick() {
  static const double rate = [] {
    const auto c0 = std::chrono::steady_clock::now();
    const int64_t t0 = perf_ticks();
    while (std::chrono::steady_clock::now() - c0 < std::chrono::milliseconds(20)) {
    }
    const int64_t t1 = perf_ticks();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - c0).count();
    return t1 > t0 ? ns / static_cast<double>(t1 - t0) : 1.0;
  }();
  return rate;
}

PerfMonitor::PerfMonitor(std::span<const std::string_view> op_names, size_t series_capacity,
                         double ns_per_tick)
    : n_ops_(op_names.size()), capacity_(series_capacity), ns_per_tick_(ns_per_tick) {
  if (op_names.size() > kMaxOps) {
    throw std::invalid_argument("PerfMonitor: " + std::to_string(op_names.size()) +
                                " operations, at most " + std::to_string(kMaxOps));
  }
  std::copy(op_names.begin(), op_names.end(), names_.begin());
  ring_.assign(capacity_ * n_ops_, 0);
}

double PerfMonitor::ns_per_tick() const {
  if (ns_per_tick_ <= 0) ns_per_tick_ = perf_ns_per_tick();
  return ns_per_tick_;
}

void PerfMonitor::end_step(int64_t tokens) {
  if (capacity_ > 0) {
    const size_t row = static_cast<size_t>(steps_) % capacity_;
    std::copy_n(step_.begin(), n_ops_, ring_.begin() + static_cast<ptrdiff_t>(row * n_ops_));
  }
  step_.fill(0);
  ++steps_;
  tokens_ += tokens;
}

void PerfMonitor::reset() {
  total_.fill(0);
  calls_.fill(0);
  step_.fill(0);
  steps_ = tokens_ = 0;
}

size_t PerfMonitor::series_size() const {
  return std::min(static_cast<size_t>(steps_), capacity_);
}

int64_t PerfMonitor::series_ticks(size_t i, PerfOpId op) const {
  if (i >= series_size()) throw std::out_of_range("PerfMonitor::series_ticks: step out of range");
  const size_t first = static_cast<size_t>(steps_) - series_size();
  const size_t row = (first + i) % capacity_;
  if (op.index >= n_ops_) throw std::out_of_range("PerfMonitor::series_ticks: unknown operation");
  return ring_[row * n_ops_ + op.index];
}

void PerfMonitor::write_json(std::ostream& out, bool series) const {
  const double ns = ns_per_tick();
  int64_t all = 0;
  for (int64_t t : total_) all += t;
  out << "{\"steps\": " << steps_ << ", \"tokens\": " << tokens_
      << ", \"total_ms\": " << fmt(static_cast<double>(all) * ns * 1e-6) << ", \"ops\": {";
  const size_t n = series_size();
  bool first = true;
  for (size_t o = 0; o < n_ops_; ++o) {
    if (calls_[o] == 0) continue;
    std::vector<double> per_step;
    for (size_t i = 0; i < n; ++i) {
      per_step.push_back(static_cast<double>(series_ticks(i, o)) * ns * 1e-3);
    }
    std::sort(per_step.begin(), per_step.end());
    double mean = 0;
    for (double v : per_step) mean += v;
    if (!per_step.empty()) mean /= static_cast<double>(per_step.size());
    out << (first ? "" : ", ") << "\"" << names_[o] << "\": {\"calls\": " << calls_[o]
        << ", \"total_ms\": " << fmt(static_cast<double>(total_[o]) * ns * 1e-6) << ", \"share\": "
        << fmt(all > 0 ? static_cast<double>(total_[o]) / static_cast<double>(all) : 0)
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
    for (size_t o = 0; o < n_ops_; ++o) {
      if (calls_[o] == 0) continue;
      out << (first ? "" : ", ") << "\"" << names_[o] << "\": [";
      for (size_t i = 0; i < n; ++i) {
        out << (i ? ", " : "") << fmt(static_cast<double>(series_ticks(i, o)) * ns * 1e-3);
      }
      out << "]";
      first = false;
    }
    out << "}";
  }
  out << "}";
}

}  // namespace bitnet
