#include "tools/bench-compare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace bitnet::model {

namespace fs = std::filesystem;

std::vector<TestComparison> compare_reports(const BenchReport& current, const BenchReport& baseline,
                                            double tolerance, double alpha) {
  std::vector<TestComparison> out;
  for (const BenchResult& r : current.results) {
    TestComparison c;
    c.test = r.name();
    c.current_median_tps = r.median_tps();
    const BenchResult* b = baseline.find(c.test);
    if (!b) {
      c.in_baseline = false;
    } else {
      c.baseline_median_tps = b->median_tps();
      c.check = check_regression(r.tokens_per_second, b->tokens_per_second, tolerance, alpha);
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> setup_differences(const BenchReport& a, const BenchReport& b) {
  std::vector<std::string> out;
  auto differ = [&](const std::string& what, const std::string& now, const std::string& base) {
    if (now != base) out.push_back(what + ": " + now + " now, " + base + " in the baseline");
  };
  const auto model_id = [](const BenchReport& r) {
    return (r.model_name.empty() ? r.model_path : r.model_name) + " (" +
           std::to_string(r.ternary_params) + " ternary parameters)";
  };
  differ("model", model_id(a), model_id(b));
  if (a.model_bytes && b.model_bytes && a.model_bytes != b.model_bytes) {
    differ("model file size", std::to_string(a.model_bytes) + " bytes",
           std::to_string(b.model_bytes) + " bytes");
  }
  const auto kv = [](const BenchParams& p) { return p.kv == KvType::F16 ? "f16" : "f32"; };
  differ("KV type", kv(a.params), kv(b.params));
  differ("kernels", a.machine.isa, b.machine.isa);
  differ("weight layout", a.machine.layout, b.machine.layout);
  if (!a.machine.lm_head.empty() && !b.machine.lm_head.empty()) {
    differ("LM head", a.machine.lm_head, b.machine.lm_head);
  }
  differ("CPU", a.machine.cpu, b.machine.cpu);
  const auto plan = [](const BenchParams& p) {
    return std::string(p.split_fused_linears ? "split linears"
                       : p.fused_norm_quant  ? "all fusions"
                                             : "norm fusions off");
  };
  differ("execution plan", plan(a.params), plan(b.params));
  differ("prefill chunk (-b)", std::to_string(a.params.max_batch),
         std::to_string(b.params.max_batch));
  differ("tg prompt (--gen-prompt)", std::to_string(a.params.gen_prompt),
         std::to_string(b.params.gen_prompt));
  return out;
}

bool any_regression(const std::vector<TestComparison>& comparisons) {
  return std::any_of(comparisons.begin(), comparisons.end(), [](const TestComparison& c) {
    return c.in_baseline && c.check.verdict == Verdict::Regression;
  });
}

std::string append_history(const std::string& dir, const BenchReport& report) {
  fs::create_directories(dir);
  std::string stamp = report.timestamp;  // 2026-11-24T05:11:00Z -> 20261124T051100Z
  stamp.erase(
      std::remove_if(stamp.begin(), stamp.end(), [](char ch) { return ch == '-' || ch == ':'; }),
      stamp.end());
  fs::path path = fs::path(dir) / ("bench-" + stamp + ".json");
  // "_" sorts after ".", and the zero padding keeps _002 < _010.
  for (int i = 2; fs::exists(path); ++i) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "_%03d", i);
    path = fs::path(dir) / ("bench-" + stamp + suffix + ".json");
  }
  std::ofstream out(path);
  out << to_json(report).dump(1) << "\n";
  if (!out) throw std::runtime_error(path.string() + ": cannot write the history entry");
  return path.string();
}

std::vector<BenchReport> load_history(const std::string& dir) {
  std::vector<fs::path> files;
  if (fs::is_directory(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (e.is_regular_file() && name.rfind("bench-", 0) == 0 && e.path().extension() == ".json")
        files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<BenchReport> runs;
  for (const fs::path& f : files) {
    std::ifstream in(f);
    try {
      runs.push_back(report_from_json(nlohmann::json::parse(in)));
    } catch (const std::exception& e) {
      throw std::invalid_argument(f.string() + ": not a bench result (" + e.what() + ")");
    }
  }
  return runs;
}

std::vector<Trend> history_trends(const std::vector<BenchReport>& runs) {
  std::vector<Trend> out;
  if (runs.empty()) return out;
  for (const BenchResult& r : runs.back().results) {
    Trend t;
    t.test = r.name();
    std::vector<double> x;
    for (const BenchReport& run : runs) {
      if (const BenchResult* b = run.find(t.test)) {
        x.push_back(static_cast<double>(x.size()));
        t.medians.push_back(b->median_tps());
      }
    }
    t.runs = static_cast<int>(t.medians.size());
    const double mid = median(t.medians);
    if (mid > 0) t.slope_percent_per_run = 100.0 * theil_sen_slope(x, t.medians) / mid;
    if (t.medians.size() > 1) {
      const std::span<const double> earlier(t.medians.data(), t.medians.size() - 1);
      t.last_vs_median = t.medians.back() / median(earlier);
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace bitnet::model
