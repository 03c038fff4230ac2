// Small pieces shared by the SVG charts we write ourselves (tools/bench-plot.cpp for `bitnet
// bench --plot`, bench/svg-chart.cpp for the benchmark matrix): text escaping, number formatting
// the series palette and round axis limits.
#pragma once

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <string>

namespace bitnet::svg {

inline constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                          "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// v formatted with one printf conversion (f, e.g. "%.1f").
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The smallest m x 10^k at or above v (v > 0), m from `steps` (ascending round leading digits
// ending at 10): the top of an axis whose grid lines stay readable.
inline double nice_ceiling(double v, std::initializer_list<double> steps) {
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : steps)
    if (m * p >= v * (1 - 1e-12)) return m * p;
  return 10 * p;
}

// s with the characters that are markup in SVG text escaped.
inline std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else
      o += c;
  }
  return o;
}

}  // namespace bitnet::svg
