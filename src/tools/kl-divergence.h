// Comparing the next-token distributions of two runs over the same tokens (`bitnet kl`): how far a
// lossy configuration (a quantized output matrix, an F16 KV cache, another weight encoding) moves
// the model from a lossless one. All arithmetic is in double from the float logits, so the
// comparison adds no error of its own beyond double rounding: identical logits give KL exactly 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet::model {

// log sum_v exp(logits[v]) over n >= 1 logits, in double (max-shifted). Non-finite when a logit is
// NaN or +inf; -inf logits contribute nothing unless all are -inf (then -inf).
double log_sum_exp(const float* logits, int64_t n);

// Index of the largest logit, ties to the lowest index.
int32_t argmax(const float* logits, int64_t n);

// One position: the distributions P = softmax(base) and Q = softmax(test) that predict the token
// after it, and how well each predicted the token that actually follows.
struct PositionComparison {
  double kl = 0;          // KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)), nats
  int32_t top1_base = 0;  // argmax, ties to the lowest id
  int32_t top1_test = 0;
  double nll_base = 0;  // -log P(next), nats
  double nll_test = 0;  // -log Q(next)
};

// base, test: [n_vocab] logits; next: the token that follows, in [0, n_vocab). Terms with
// P(v) = 0 contribute 0; a Q(v) = 0 under P(v) > 0 gives +inf. The sum is not clamped: for
// distributions that differ by a few ulps it may come out a few 1e-17 below 0. Does not allocate.
PositionComparison compare_position(const float* base, const float* test, int64_t n_vocab,
                                    int32_t next);

// The p-quantile (p in [0, 1]) of values, interpolating linearly between order statistics
// (numpy's default, "linear"): h = (n - 1) p, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor
// h]). values must not be empty or hold a NaN.
double quantile(std::vector<double> values, double p);

struct KlSummary {
  int64_t positions = 0;
  double kl_mean = 0, kl_median = 0, kl_p99 = 0, kl_max = 0;
  int64_t kl_max_index = 0;   // index into the compared positions of the largest KL (first if tied)
  int64_t top1_same = 0;      // positions whose two argmaxes agree
  double top1_agreement = 0;  // top1_same / positions
  double ppl_base = 0;        // exp(mean nll_base)
  double ppl_test = 0;        // exp(mean nll_test)
};

// Throws std::invalid_argument when positions is empty.
KlSummary summarize(std::span<const PositionComparison> positions);

}  // namespace bitnet::model
