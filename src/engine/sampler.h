// Token sampling from logits (llama.cpp's default chain order) and stop-string matching on the
// generated text. Neither needs a model; both are used once per decoded token and do not allocate
// per call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::engine {

// Defaults follow llama.cpp's (common/common.h) except the seed, which is fixed so that two runs
// with the same prompt and parameters produce the same text unless the user passes a seed.
struct SamplerParams {
  float temperature = 0.8f;        // 0 = greedy (argmax after the repetition penalty)
  int32_t top_k = 40;              // 0 = off
  float top_p = 0.95f;             // 1 = off; must be in (0, 1]
  float min_p = 0.05f;             // 0 = off; must be in [0, 1]
  float repeat_penalty = 1.0f;     // 1 = off; must be > 0
  int32_t repeat_last_n = 64;      // window over the history; 0 = off, -1 = the whole history
  float presence_penalty = 0.0f;   // subtracted once from each token in the window; 0 = off
  float frequency_penalty = 0.0f;  // subtracted per occurrence in the window; 0 = off
  uint64_t seed = kDefaultSeed;

  static constexpr uint64_t kDefaultSeed = 0x5EED5EED5EED5EEDull;
};

// Chain, each stage seeing the survivors of the one before (llama.cpp's default order):
//   1. penalties over the distinct tokens among the last repeat_last_n of `history`, each token
//      seen c > 0 times there: a positive logit is divided by repeat_penalty, a negative one
//      multiplied, then c * frequency_penalty + presence_penalty is subtracted (llama.cpp's
//      penalties sampler; OpenAI's presence/frequency penalties with the window as the history);
//   2. greedy (temperature == 0): the argmax, ties to the lowest token id; done;
//   3. top-k: the k largest logits (ties to the lower id);
//   4. top-p: the smallest prefix, by descending probability, whose probability sum is >= top_p
//      (probabilities are the softmax over the survivors at temperature 1);
//   5. min-p: drop tokens whose probability is < min_p * (largest probability);
//   6. temperature: divide the survivors' logits by it;
//   7. draw from their softmax with std::mt19937_64 (its output sequence is fixed by the C++
//      standard) turned into a double in [0, 1) by taking its top 53 bits, so one seed gives the
//      same tokens with every standard library.
// Candidate order is a total order (logit descending, then id ascending), so results do not
// depend on the sort implementation either.
class Sampler {
 public:
  // Throws std::invalid_argument naming the parameter when one is out of range.
  Sampler(SamplerParams params, int32_t n_vocab);

  // logits: [n_vocab], finite or -inf. history: tokens so far (prompt and generated), each in
  // [0, n_vocab). Does not allocate. Aborts on a NaN logit or an out-of-range history token.
  int32_t sample(const float* logits, std::span<const int32_t> history);

  const SamplerParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };

  SamplerParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // [n_vocab], reused by every call
  std::vector<double> probs_;          // [n_vocab], softmax of the survivors
  std::vector<uint32_t> counts_;       // [n_vocab], occurrences in the window; zero between calls
};

// Holds back generated text that could be the start of a stop string, and reports when one is
// complete. Generation stops as soon as any stop string is complete in the text so far (the one
// ending first; of those ending at the same byte, the longest); the text before it is emitted, the
// stop string and anything after it are not. The result does not depend on how the text is cut
// into pieces.
class StopMatcher {
 public:
  struct Step {
    std::string_view emit;  // bytes that may be shown now; valid until the next feed/flush
    bool stopped = false;   // a stop string was hit: generation ends, later feeds emit nothing
  };

  // Empty stop strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends one decoded piece. Pieces may split a stop string anywhere (and UTF-8 sequences: held
  // back bytes are released whole once they can no longer start a stop string).
  Step feed(std::string_view piece);

  // At the end of generation (EOS, length limit): the held-back text, which no stop string matched.
  std::string_view flush();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string buffer_;     // held-back bytes, then the bytes handed out by the last call
  size_t handed_out_ = 0;  // prefix of buffer_ returned by the last call, dropped on the next
  bool stopped_ = false;
};

}  // namespace bitnet::engine
