#include "svg-chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "tools/svg-util.h"

namespace bitnet::bench {
namespace {

using svg::esc;
using svg::fmt;
using svg::kColors;

constexpr double kWidth = 900, kPanelH = 280, kLeft = 90, kRight = 190, kTop = 90, kGap = 80;

// 1234567 -> "1.23M", 45600 -> "45.6K".
std::string short_number(double v) {
  if (v >= 1e6) return fmt("%.3gM", v / 1e6);
  if (v >= 1e3) return fmt("%.3gK", v / 1e3);
  return fmt("%.3g", v);
}

std::string line(double x1, double y1, double x2, double y2, const std::string& style) {
  return "<line x1='" + fmt("%.1f", x1) + "' y1='" + fmt("%.1f", y1) + "' x2='" + fmt("%.1f", x2) +
         "' y2='" + fmt("%.1f", y2) + "' " + style + "/>\n";
}

std::string text(double x, double y, const std::string& s, const std::string& attrs) {
  return "<text x='" + fmt("%.1f", x) + "' y='" + fmt("%.1f", y) + "' " + attrs + ">" + esc(s) +
         "</text>\n";
}

std::string panel_svg(const ChartPanel& p, double top, const std::string& x_label,
                      const std::string& y_label) {
  const double x0 = kLeft, w = kWidth - kLeft - kRight, h = kPanelH;
  std::set<double> xs;
  double y_max = 0;
  for (const ChartSeries& s : p.series)
    for (const auto& [x, y] : s.points) {
      xs.insert(x);
      y_max = std::max(y_max, y);
    }
  std::string o = text(x0, top - 12, p.title, "font-size='14' font-weight='bold'");
  if (xs.empty()) return o + text(x0, top + 20, "(no results)", "font-size='12'");
  // Round leading digits fine enough that five grid steps stay readable (6K -> 1.2K steps).
  const double hi = svg::nice_ceiling(y_max > 0 ? y_max * 1.08 : 1,
                                      {1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0});
  const double lx0 = std::log2(*xs.begin()), lx1 = std::log2(*xs.rbegin());
  auto px = [&](double x) {
    return lx1 > lx0 ? x0 + 20 + (std::log2(x) - lx0) / (lx1 - lx0) * (w - 40) : x0 + w / 2;
  };
  auto py = [&](double y) { return top + h - y / hi * h; };
  for (int i = 0; i <= 5; ++i) {
    const double v = hi * i / 5;
    o += line(x0, py(v), x0 + w, py(v), "stroke='#ddd'");
    o += text(x0 - 6, py(v) + 4, short_number(v), "font-size='11' text-anchor='end'");
  }
  for (double x : xs) {
    o += line(px(x), top + h, px(x), top + h + 4, "stroke='#333'");
    o += text(px(x), top + h + 17, fmt("%g", x), "font-size='11' text-anchor='middle'");
  }
  o += line(x0, top, x0, top + h, "stroke='#333'");
  o += line(x0, top + h, x0 + w, top + h, "stroke='#333'");
  o += text(x0 + w / 2, top + h + 36, x_label, "font-size='12' text-anchor='middle'");
  o += "<text transform='translate(" + fmt("%.1f", x0 - 62) + "," + fmt("%.1f", top + h / 2) +
       ") rotate(-90)' font-size='12' text-anchor='middle'>" + esc(y_label) + "</text>\n";
  for (size_t i = 0; i < p.series.size(); ++i) {
    const ChartSeries& s = p.series[i];
    const std::string color = kColors[static_cast<size_t>(s.color >= 0 ? s.color : i) % 8];
    auto pts = s.points;
    std::sort(pts.begin(), pts.end());
    std::string poly;
    for (const auto& [x, y] : pts) poly += fmt("%.1f,", px(x)) + fmt("%.1f ", py(y));
    o += "<polyline fill='none' stroke='" + color + "' stroke-width='2'" +
         (s.dashed ? " stroke-dasharray='6,4'" : "") + " points='" + poly + "'/>\n";
    for (const auto& [x, y] : pts) {
      o += "<circle cx='" + fmt("%.1f", px(x)) + "' cy='" + fmt("%.1f", py(y)) + "' r='3' fill='" +
           color + "'/>\n";
      o += text(px(x) + 4, py(y) - 6, short_number(y), "font-size='9' fill='" + color + "'");
    }
    const double ly = top + 10 + 20 * static_cast<double>(i);
    o += line(x0 + w + 16, ly - 4, x0 + w + 36, ly - 4,
              "stroke='" + color + "' stroke-width='2'" +
                  (s.dashed ? std::string(" stroke-dasharray='6,4'") : std::string()));
    o += text(x0 + w + 42, ly, s.label, "font-size='12'");
  }
  return o;
}

}  // namespace

std::string line_chart_svg(const std::string& title, const std::string& x_label,
                           const std::string& y_label, const std::vector<ChartPanel>& panels) {
  const double height =
      kTop + 20 + static_cast<double>(std::max<size_t>(panels.size(), 1)) * (kPanelH + kGap);
  std::string o = "<svg xmlns='http://www.w3.org/2000/svg' width='" + fmt("%.0f", kWidth) +
                  "' height='" + fmt("%.0f", height) + "' font-family='sans-serif'>\n";
  o += "<rect width='100%' height='100%' fill='white'/>\n";
  size_t start = 0;
  for (int n = 0; start <= title.size(); ++n) {
    const size_t end = std::min(title.find('\n', start), title.size());
    o += text(kLeft, 26 + 18 * n, title.substr(start, end - start),
              n == 0 ? "font-size='16' font-weight='bold'" : "font-size='12' fill='#444'");
    start = end + 1;
  }
  for (size_t i = 0; i < panels.size(); ++i)
    o += panel_svg(panels[i], kTop + 20 + static_cast<double>(i) * (kPanelH + kGap), x_label,
                   y_label);
  return o + "</svg>\n";
}

}  // namespace bitnet::bench
