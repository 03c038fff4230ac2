// A dependency-free SVG line chart for benchmark results: panels stacked vertically, each with its
// own y range from 0 (models differ by orders of magnitude), x on a log2 axis (batch sizes), one
// polyline with point markers per series, the value printed beside each point.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bitnet::bench {

struct ChartSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x > 0, y >= 0), any order
  bool dashed = false;
  int color = -1;  // palette index; -1: the series' index in its panel
};

struct ChartPanel {
  std::string title;
  std::vector<ChartSeries> series;
};

// title: its first line large, further lines ('\n') smaller below it.
std::string line_chart_svg(const std::string& title, const std::string& x_label,
                           const std::string& y_label, const std::vector<ChartPanel>& panels);

}  // namespace bitnet::bench
