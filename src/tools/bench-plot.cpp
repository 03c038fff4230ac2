#include "tools/bench-plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "tools/svg-util.h"

namespace bitnet::model {
namespace {

using svg::esc;
using svg::fmt;
using svg::kColors;

constexpr double kWidth = 860, kPanelH = 300, kLeft = 80, kRight = 170, kTop = 40, kBottom = 50;

struct Frame {
  double x0, y0, w, h;  // plot area
  double lo, hi;        // y range
  double y(double v) const { return y0 + h - (v - lo) / (hi - lo) * h; }
};

void axes(std::string& s, const Frame& f, const std::string& title, const std::string& ylabel,
          int ticks, const char* tick_fmt) {
  s += "<text x='" + fmt("%.0f", f.x0) + "' y='" + fmt("%.0f", f.y0 - 14) +
       "' font-size='15' font-weight='bold'>" + esc(title) + "</text>\n";
  for (int i = 0; i <= ticks; ++i) {
    const double v = f.lo + (f.hi - f.lo) * i / ticks, y = f.y(v);
    s += "<line x1='" + fmt("%.1f", f.x0) + "' x2='" + fmt("%.1f", f.x0 + f.w) + "' y1='" +
         fmt("%.1f", y) + "' y2='" + fmt("%.1f", y) + "' stroke='#ddd'/>\n";
    s += "<text x='" + fmt("%.1f", f.x0 - 6) + "' y='" + fmt("%.1f", y + 4) +
         "' font-size='11' text-anchor='end'>" + fmt(tick_fmt, v) + "</text>\n";
  }
  s += "<line x1='" + fmt("%.1f", f.x0) + "' x2='" + fmt("%.1f", f.x0) + "' y1='" +
       fmt("%.1f", f.y0) + "' y2='" + fmt("%.1f", f.y0 + f.h) + "' stroke='#333'/>\n";
  s += "<line x1='" + fmt("%.1f", f.x0) + "' x2='" + fmt("%.1f", f.x0 + f.w) + "' y1='" +
       fmt("%.1f", f.y0 + f.h) + "' y2='" + fmt("%.1f", f.y0 + f.h) + "' stroke='#333'/>\n";
  s += "<text transform='translate(" + fmt("%.1f", f.x0 - 55) + "," + fmt("%.1f", f.y0 + f.h / 2) +
       ") rotate(-90)' font-size='12' text-anchor='middle'>" + esc(ylabel) + "</text>\n";
}

void legend(std::string& s, const Frame& f, const std::vector<std::string>& labels) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const double y = f.y0 + 10 + 20 * static_cast<double>(i);
    s += "<rect x='" + fmt("%.1f", f.x0 + f.w + 20) + "' y='" + fmt("%.1f", y - 10) +
         "' width='12' height='12' fill='" + kColors[i % 8] + "'/>\n";
    s += "<text x='" + fmt("%.1f", f.x0 + f.w + 38) + "' y='" + fmt("%.1f", y) +
         "' font-size='12'>" + esc(labels[i]) + "</text>\n";
  }
}

// Grouped bars of one test kind; returns the panel's SVG at vertical offset top.
std::string bar_panel(const BenchReport& r, const std::string& kind, double top) {
  std::set<int64_t> sizes;
  std::set<int> threads;
  double hi = 0;
  for (const BenchResult& b : r.results) {
    if (b.kind != kind) continue;
    sizes.insert(b.n_tokens);
    threads.insert(b.threads);
    hi = std::max(hi, b.median_tps() + b.sd_tps());
  }
  const Frame f{kLeft,
                top + kTop,
                kWidth - kLeft - kRight,
                kPanelH - kTop - kBottom,
                0,
                svg::nice_ceiling(std::max(hi * 1.1, 1e-9),
                                  {1.0, 2.0, 5.0, 10.0})};  // headroom for the value labels
  std::string s;
  axes(s, f,
       kind == "pp" ? "Prompt processing (median of repetitions, +- 1 sd)"
                    : "Generation (median of repetitions, +- 1 sd)",
       "tokens / s", 5, f.hi >= 50 ? "%.0f" : "%.3g");
  const double group_w = f.w / static_cast<double>(sizes.size());
  const double bar_w = group_w * 0.7 / static_cast<double>(threads.size());
  size_t gi = 0;
  for (int64_t n : sizes) {
    const double gx = f.x0 + group_w * static_cast<double>(gi) + group_w * 0.15;
    size_t ti = 0;
    for (int t : threads) {
      for (const BenchResult& b : r.results) {
        if (b.kind != kind || b.n_tokens != n || b.threads != t) continue;
        const double x = gx + bar_w * static_cast<double>(ti), m = b.median_tps(), sd = b.sd_tps();
        s += "<rect x='" + fmt("%.1f", x) + "' y='" + fmt("%.1f", f.y(m)) + "' width='" +
             fmt("%.1f", bar_w * 0.9) + "' height='" + fmt("%.1f", f.y(0) - f.y(m)) + "' fill='" +
             kColors[ti % 8] + "'/>\n";
        const double cx = x + bar_w * 0.45;
        s += "<line x1='" + fmt("%.1f", cx) + "' x2='" + fmt("%.1f", cx) + "' y1='" +
             fmt("%.1f", f.y(std::max(0.0, m - sd))) + "' y2='" + fmt("%.1f", f.y(m + sd)) +
             "' stroke='#000'/>\n";
        s += "<text x='" + fmt("%.1f", cx) + "' y='" + fmt("%.1f", f.y(m + sd) - 4) +
             "' font-size='10' text-anchor='middle'>" + fmt(m >= 100 ? "%.0f" : "%.3g", m) +
             "</text>\n";
      }
      ++ti;
    }
    s += "<text x='" + fmt("%.1f", f.x0 + group_w * (static_cast<double>(gi) + 0.5)) + "' y='" +
         fmt("%.1f", f.y0 + f.h + 18) + "' font-size='12' text-anchor='middle'>" + kind +
         std::to_string(n) + "</text>\n";
    ++gi;
  }
  std::vector<std::string> labels;
  for (int t : threads) labels.push_back(std::to_string(t) + (t == 1 ? " thread" : " threads"));
  legend(s, f, labels);
  return s;
}

std::string history_panel(const std::vector<BenchReport>& runs, const BenchReport* baseline,
                          double top) {
  // Series per test of the last run: median t/s per run divided by the reference median.
  std::vector<std::string> names;
  std::vector<std::vector<std::pair<double, double>>> series;  // (run index, ratio)
  double lo = 0.9, hi = 1.1;
  for (const BenchResult& last : runs.back().results) {
    const std::string name = last.name();
    const BenchResult* ref = baseline ? baseline->find(name) : nullptr;
    std::vector<std::pair<double, double>> pts;
    double ref_tps = ref ? ref->median_tps() : 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      const BenchResult* b = runs[i].find(name);
      if (!b) continue;
      if (ref_tps <= 0) ref_tps = b->median_tps();  // no baseline: the first run
      const double ratio = b->median_tps() / ref_tps;
      pts.emplace_back(static_cast<double>(i), ratio);
      lo = std::min(lo, ratio);
      hi = std::max(hi, ratio);
    }
    names.push_back(name);
    series.push_back(std::move(pts));
  }
  lo = std::floor(lo * 20) / 20;
  hi = std::ceil(hi * 20) / 20;
  const Frame f{kLeft, top + kTop, kWidth - kLeft - kRight, kPanelH - kTop - kBottom, lo, hi};
  std::string s;
  axes(s, f,
       std::string("History: median t/s relative to ") +
           (baseline ? "the baseline" : "each test's first run"),
       "ratio", static_cast<int>(std::lround((hi - lo) / 0.05)), "%.2f");
  const double span = std::max(1.0, static_cast<double>(runs.size() - 1));
  auto px = [&](double i) { return f.x0 + f.w * i / span; };
  for (double ref : {1.0, 0.95}) {
    s += "<line x1='" + fmt("%.1f", f.x0) + "' x2='" + fmt("%.1f", f.x0 + f.w) + "' y1='" +
         fmt("%.1f", f.y(ref)) + "' y2='" + fmt("%.1f", f.y(ref)) + "' stroke='#555'" +
         (ref < 1 ? " stroke-dasharray='6,4'" : "") + "/>\n";
  }
  s += "<text x='" + fmt("%.1f", f.x0 + f.w - 4) + "' y='" + fmt("%.1f", f.y(0.95) - 4) +
       "' font-size='10' text-anchor='end'>-5% (regression tolerance)</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    std::string pts;
    for (const auto& [i, v] : series[k]) {
      pts += fmt("%.1f", px(i)) + "," + fmt("%.1f", f.y(v)) + " ";
      s += "<circle cx='" + fmt("%.1f", px(i)) + "' cy='" + fmt("%.1f", f.y(v)) + "' r='3' fill='" +
           kColors[k % 8] + "'/>\n";
    }
    s += "<polyline points='" + pts + "' fill='none' stroke='" + kColors[k % 8] + "'/>\n";
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    s += "<text x='" + fmt("%.1f", px(static_cast<double>(i))) + "' y='" +
         fmt("%.1f", f.y0 + f.h + 16) + "' font-size='10' text-anchor='middle'>" +
         std::to_string(i + 1) + "</text>\n";
  }
  s += "<text x='" + fmt("%.1f", f.x0 + f.w / 2) + "' y='" + fmt("%.1f", f.y0 + f.h + 34) +
       "' font-size='12' text-anchor='middle'>run (oldest first)</text>\n";
  legend(s, f, names);
  return s;
}

}  // namespace

std::string bench_svg(const BenchReport& report, const std::vector<BenchReport>& history,
                      const BenchReport* baseline) {
  std::vector<std::string> panels;
  double top = 30;
  for (const char* kind : {"pp", "tg"}) {
    if (std::none_of(report.results.begin(), report.results.end(),
                     [&](const BenchResult& b) { return b.kind == kind; }))
      continue;
    panels.push_back(bar_panel(report, kind, top));
    top += kPanelH;
  }
  if (!history.empty()) {
    panels.push_back(history_panel(history, baseline, top));
    top += kPanelH;
  }
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + fmt("%.0f", kWidth) +
                  "' height='" + fmt("%.0f", top) + "' font-family='sans-serif'>\n";
  s += "<rect width='100%' height='100%' fill='white'/>\n";
  s += "<text x='10' y='20' font-size='13'>" +
       esc("bitnet bench " + report.tool_version + " | " + report.model_name + " | " +
           report.machine.isa + ", layout " + report.machine.layout + " | " + report.timestamp) +
       "</text>\n";
  for (const std::string& p : panels) s += p;
  s += "</svg>\n";
  return s;
}

}  // namespace bitnet::model
