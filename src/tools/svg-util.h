// Small pieces shared by the SVG charts we write ourselves (model/bench-plot.cpp for `bitnet
// bench --plot`, bench/svg-chart.cpp for the benchmark matrix): text escaping, number formatting
// and the series palette.
#pragma once

#include <cstdio>
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
