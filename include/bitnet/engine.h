// The bitnet-cxx public API: BitNet b1.58 text generation.
//
//   Simple:    bitnet::generate(model_path, prompt, options) loads the model (through the model
//              cache, model-cache.h) and returns the generated text.
//   Advanced:  bitnet::Engine, configured by an EngineConfig (optimization level, presets), with
//              streaming (a callback per piece of text), asynchronous requests (submit() from any
//              thread, a std::future or a completion callback per request), cancellation
//              (CancelToken), statistics and a per-operation performance profile.
//
// Requests are served by continuous batching: one scheduler thread runs forward steps in which
// every running request contributes its next token (or a chunk of its prompt), so the weights are
// read once per step for all of them; requests join and leave between steps. Admission is bounded
// by max_concurrent_requests, max_batch_tokens and the KV cache budget (kv_cache_bytes): a request
// that cannot fit now waits in a FIFO queue; one that could never fit is refused by submit().
//
// Every error at this boundary is a bitnet::Error (error.h) with a message naming the file, option
// or request at fault; nothing here aborts on bad input. This header needs only the standard
// library: the engine's internals are behind a pointer.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bitnet/error.h"
#include "bitnet/model-cache.h"

namespace bitnet {

// Levels set the EngineConfig fields below as documented there; fields may be changed afterwards.
enum class OptimizationLevel {
  None,        // validation-friendly: F32 KV cache, no prepared cache, 1 thread per request
  Basic,       // the defaults
  Aggressive,  // T1 weight layout, prepared cache always used, all cores
};

enum class KvCacheType { F16, F32 };

// How the ternary weights are packed in memory (both hold the same weights, results are equal):
// T2 is 2 bits per weight, T1 1.6 bits (5 weights per byte), slower to decode except where the
// kernels decode it at memory speed (AVX-512 VNNI). Auto picks T1 there and T2 elsewhere.
enum class WeightLayout { Auto, T1, T2 };

// The prepared-model cache: the packed weights written to a file once and mapped on later loads
// instead of repacked (seconds saved on large models). Auto uses it for models whose ternary
// weights exceed 64 MiB.
enum class PreparedCache { Auto, On, Off };

struct EngineConfig {
  // Sets every field to the level's value:
  //   field                    None   Basic  Aggressive
  //   threads                  1      0      0          (0: all cores)
  //   kv_type                  F32    F16    F16
  //   layout                   Auto   Auto   T1
  //   prepared_cache           Off    Auto   On
  //   fused_norm_quant         off    on     on
  // The other fields have the same defaults at every level.
  explicit EngineConfig(OptimizationLevel level = OptimizationLevel::Basic);

  // Aggressive, with 8 concurrent requests batched together (the ternary weights are read once
  // per step for all of them: the highest throughput; one request alone runs as fast as with 1).
  static EngineConfig optimized_for_speed();
  // Basic, then: T1 layout (20% less memory for the ternary weights than T2), F16 KV cache,
  // context_size 2048, max_batch_tokens 32 (smaller activation buffers), one request at a time
  // and a KV budget of one request's context.
  static EngineConfig optimized_for_memory();

  OptimizationLevel level = OptimizationLevel::Basic;  // the level the fields were set from
  // Compute threads of the forward step (the scheduler thread included). 0: all hardware threads.
  int threads = 0;
  // KV cache element type: F16 halves its memory; F32 stores the keys and values exactly.
  KvCacheType kv_type = KvCacheType::F16;
  // Positions per request (prompt plus generated tokens). 0: the model's context length; larger
  // values are reduced to it.
  int64_t context_size = 0;
  // Tokens evaluated per forward step: one per decoding request plus chunks of prompts; the
  // activation buffers are sized for this many. Longer prompts take several steps. Must be at
  // least max_concurrent_requests.
  int64_t max_batch_tokens = 256;
  // The KV cache budget in bytes, allocated in pages of 64 positions. A request is admitted when
  // pages for its prompt plus max_tokens (at most context_size) can be reserved, so it never runs
  // out mid-way. 0: max_concurrent_requests whole contexts. Pages a request never reaches are not
  // touched (no resident memory).
  uint64_t kv_cache_bytes = 0;
  WeightLayout layout = WeightLayout::Auto;
  PreparedCache prepared_cache = PreparedCache::Auto;
  // Where prepared caches (and converted Hugging Face checkpoints) live; empty: $BITNET_CACHE_DIR,
  // else $XDG_CACHE_HOME/bitnet-cxx, else ~/.cache/bitnet-cxx.
  std::string cache_dir;
  // Requests decoded together in one batched forward step. Further requests wait in a FIFO queue.
  int max_concurrent_requests = 1;
  // false: the validation mode of the forward pass (exact float products with the ternary weights
  // instead of int8-quantized activations; much slower). No level changes it.
  bool quantize_activations = true;
  // The fused RMSNorm + int8 quantization kernel (one pass over the row instead of three); off
  // runs the unfused operations. Results are identical either way; `bitnet inspect --plan` lists
  // the fusions and `bitnet bench --no-fuse` measures their gain.
  bool fused_norm_quant = true;
  // The LM head as int8 with one scale per vocabulary row, quantized from the model's output
  // matrix at load (one byte per weight, multiplied on the integer units like the ternary
  // linears): faster decode and batched steps where the head is a large part of them, at a small
  // change of the logits (lossy: KL divergence in docs/PERFORMANCE.md). Off: the file's matrix as
  // it is. No level changes it; used only with quantize_activations.
  bool int8_lm_head = false;
  // The prefix cache: a finished request's slot keeps its keys and values, and a later request
  // whose prompt starts with the same tokens (the next turn of a conversation, a shared system
  // prompt) evaluates only the rest. Cached slots and pages are given up as soon as a request
  // needs them, so they never delay one; results are identical with it on or off.
  bool prefix_cache = true;
  // The model cache to load through; null: ModelCache::global(). The Engine keeps what it needs
  // alive, so the ModelCache object may be destroyed before the Engine.
  ModelCache* model_cache = nullptr;
  // The chat template for GenerateOptions::chat and apply_chat_template(): "bitnet-2b4t", "llama3"
  // or "plain"; empty: the model's (its tokenizer.chat_template when recognised, else chosen from
  // its vocabulary; EngineInfo::chat_template_note says when that was a fallback).
  std::string chat_template;
  // Called while the constructor packs the ternary weights (not when they come from the model
  // cache or the prepared cache): layers done of total, one call at a time, the last with
  // done == total. For progress reports; what it throws is ignored.
  std::function<void(int64_t done, int64_t total)> on_pack_progress;
};

// Cancels a request from any thread: shared by copies, so keep one and pass a copy in
// GenerateOptions. A cancelled request stops before its next token (a queued one never starts)
// and completes with StopReason::Cancelled and the text generated so far.
class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void cancel() const { flag_->store(true, std::memory_order_relaxed); }
  bool cancelled() const { return flag_->load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

// A token and its log-probability under the model: the log-softmax of the logits at its
// position, before penalties, temperature and truncation (what OpenAI's logprobs report).
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

// One generated token, given to GenerateOptions::on_token before its text (if any) reaches the
// piece callback. The end-of-generation token is not given.
struct TokenEvent {
  int32_t token = 0;
  int64_t index = 0;                  // 0 for the first generated token
  float logprob = 0;                  // when GenerateOptions::logprobs, else 0
  std::span<const TokenLogprob> top;  // GenerateOptions::top_logprobs alternatives, most likely
                                      // first; valid during the call
};

// Sampling follows llama.cpp's chain (penalties, top-k, top-p, min-p, temperature); temperature 0
// is greedy decoding. Values out of range make generate()/submit() throw.
struct GenerateOptions {
  int64_t max_tokens = 64;  // >= 0
  float temperature = 0.8f;
  int32_t top_k = 40;           // 0: off
  float top_p = 0.95f;          // (0, 1]; 1: off
  float min_p = 0.05f;          // [0, 1]; 0: off
  float repeat_penalty = 1.0f;  // > 0; 1: off
  int32_t repeat_last_n = 64;   // 0: off; -1: the whole history
  // llama.cpp's presence and frequency penalties over the same window (repeat_last_n of the
  // prompt and generated tokens): a token seen c > 0 times there loses
  // presence_penalty + c * frequency_penalty from its logit. Finite; 0: off.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0x5EED5EED5EED5EEDull;
  // Generation stops when the text contains one of these; the stop string is not returned.
  std::vector<std::string> stop;
  // Wrap the prompt in the model's chat template as one user turn (text prompts only).
  bool chat = false;
  // Never stop at an end-of-generation token: they are excluded from sampling (llama.cpp's
  // --ignore-eos), so generation runs to max_tokens, a stop string or the context's end.
  bool ignore_eos = false;
  CancelToken cancel;
  // Each generated token's log-probability in GenerateResult::logprobs (and TokenEvent), and the
  // top_logprobs most likely tokens at its position (0 to 20) in GenerateResult::top_logprobs.
  // Costs a pass over the vocabulary per token; top_logprobs > 0 needs logprobs.
  bool logprobs = false;
  int32_t top_logprobs = 0;
  // Called for each generated token on the thread driving the batch (as the piece callback); an
  // exception it throws fails the request.
  std::function<void(const TokenEvent&)> on_token;
  // The raw logits (before penalties, temperature and truncation) in GenerateResult: of every
  // prompt position (prompt_logits; the prompt is then evaluated in full, never taken from the
  // prefix cache), and of each generated token's position (token_logits: the row it was sampled
  // from). n_vocab floats per row: what perplexity and logit dumps need; costly on large
  // vocabularies.
  bool prompt_logits = false;
  bool token_logits = false;
};

// A prompt given as token ids, evaluated as they are (no BOS is added). Each id must be in
// [0, n_vocab).
struct TokenPrompt {
  std::vector<int32_t> tokens;
};

// One turn of a conversation for Engine::apply_chat_template.
struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class StopReason {
  MaxTokens,        // max_tokens generated
  EndOfGeneration,  // the model produced an end-of-generation token (not included in the text)
  StopString,       // a GenerateOptions::stop string appeared
  ContextFull,      // the context (EngineConfig::context_size) is full
  Callback,         // the token callback returned false
  Cancelled,        // CancelToken::cancel() or the Engine was destroyed
};
// "max tokens", "end of generation", "stop string", "context full", "callback", "cancelled".
const char* to_string(StopReason reason);

struct GenerateTimings {
  double queue_ms = 0;                      // submit() until a worker took the request
  double time_to_first_token_ms = 0;        // submit() until the first token was sampled
  double prompt_tokens_per_second = 0;      // prompt evaluation
  double generation_tokens_per_second = 0;  // tokens after the first, over the time after it
};

struct GenerateResult {
  std::string text;             // generated text (the prompt is not repeated)
  std::vector<int32_t> tokens;  // generated token ids, end-of-generation token excluded
  int64_t prompt_tokens = 0;
  StopReason stop_reason = StopReason::MaxTokens;
  GenerateTimings timings;
  // With GenerateOptions::logprobs: one entry per generated token (as `tokens`), and
  // tokens.size() * GenerateOptions::top_logprobs alternatives, each token's most likely first.
  std::vector<TokenLogprob> logprobs;
  std::vector<TokenLogprob> top_logprobs;
  // Prompt tokens whose keys and values came from the prefix cache (EngineConfig::prefix_cache)
  // instead of being evaluated: the results are the same either way.
  int64_t cached_prompt_tokens = 0;
  // With GenerateOptions::prompt_logits: [prompt_tokens][n_vocab]; with token_logits:
  // [tokens.size() (+1 when stopped by an end-of-generation token)][n_vocab].
  std::vector<float> prompt_logits;
  std::vector<float> token_logits;
};

// Receives the generated text piece by piece (whole UTF-8 characters, stop strings withheld);
// the pieces concatenate to GenerateResult::text. Return false to stop (StopReason::Callback).
// Called on the thread driving the batch (the Engine's scheduler thread, or a generate() caller,
// see there); an exception it throws fails the request. Do not call generate() from it.
using TokenCallback = std::function<bool(std::string_view piece)>;

// What the Engine resolved its configuration to.
struct EngineInfo {
  std::string model_path;
  std::string architecture;  // e.g. "bitnet-b1.58"
  int64_t n_vocab = 0;
  int64_t context_size = 0;     // positions per request
  int64_t trained_context = 0;  // the model's context length (context_length in the file)
  int threads = 0;              // compute threads of the forward step
  int max_concurrent_requests = 0;
  int64_t max_batch_tokens = 0;
  uint64_t kv_cache_bytes = 0;  // the KV page pool
  int64_t kv_page_positions = 0;
  KvCacheType kv_type = KvCacheType::F16;
  std::string layout;          // "t1" or "t2"
  std::string kernels;         // instruction set of the active kernels, e.g. "avx2"
  std::string lm_head;         // the output matrix's type, e.g. "F16", or "int8 (from F16)"
  std::string weights_source;  // "packed", "prepared cache" or "prepared cache rebuilt"
  double load_seconds = 0;     // the load of the weights (an earlier Engine's, when shared)
  // Why the prepared cache was rebuilt, skipped or not written (e.g. an unwritable directory);
  // empty when it was used as it is or not wanted.
  std::string weights_note;
  // The format apply_chat_template writes: "bitnet-2b4t", "llama3" or "plain".
  std::string chat_template;
  std::string chat_template_note;  // non-empty when the model's template was not recognised
};

// Memory in bytes. Weights are shared with other Engines on the same model (model-cache.h). The
// forward session (KV page pool, activation arena) is allocated on the first request.
struct EngineStats {
  uint64_t weights_bytes = 0;    // the model file's bytes plus the packed ternary matrices
  uint64_t kv_pool_bytes = 0;    // the KV page pool (kv_cache_bytes rounded to whole pages)
  uint64_t kv_bytes_in_use = 0;  // pages held by running requests
  uint64_t kv_peak_bytes = 0;    // the most pages held at once
  // Internal fragmentation of the KV pages in use: 1 - positions stored / positions the held
  // pages could store (the unused tail of each request's last page). 0 when nothing is held.
  double kv_fragmentation = 0;
  uint64_t activation_bytes = 0;  // activation buffers and scratch of the batched step
  uint64_t current_bytes = 0;     // weights + activations + KV pages in use
  uint64_t peak_bytes = 0;        // weights + activations + the KV peak
  uint64_t requests_completed = 0;
  uint64_t requests_pending = 0;  // queued or running
  uint64_t requests_running = 0;  // admitted to the batch
  uint64_t requests_queued = 0;   // waiting for admission
  // The KV page pool in pages (EngineInfo::kv_page_positions positions each); 0 before the first
  // request allocates it.
  uint64_t kv_pages_total = 0;
  uint64_t kv_pages_in_use = 0;
  uint64_t kv_pages_peak = 0;
  // Pages kept for the prefix cache (finished requests' keys and values, given up on demand);
  // not in kv_pages_in_use.
  uint64_t kv_pages_cached = 0;
  uint64_t prefix_cache_hits = 0;     // requests that started from a cached prefix
  uint64_t prefix_tokens_reused = 0;  // prompt tokens not evaluated thanks to it
  uint64_t steps = 0;                 // forward steps run
  uint64_t step_tokens = 0;           // tokens evaluated by them (prompt chunks and decode tokens)
};

// Called once per request on the scheduler thread with its result, or with a null result and the
// error (bitnet::Error, or what the token callback threw). Must not block for long: the batch
// waits for it.
using CompletionCallback =
    std::function<void(const GenerateResult* result, std::exception_ptr error)>;

class Engine {
 public:
  // Loads the model (GGUF file, or Hugging Face checkpoint directory) through the model cache.
  // Worker threads start now; each allocates its session (KV cache, activations) on its first
  // request. Throws bitnet::Error for a missing or invalid model or an invalid configuration.
  explicit Engine(const std::string& model_path, const EngineConfig& config = EngineConfig{});
  // Pending requests complete as cancelled; waits for the running ones to stop.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Blocking generation. When no other thread is driving the batch, the calling thread drives it
  // (runs the forward steps, other requests' included) until its own request is done, saving the
  // hand-over to the scheduler thread; otherwise it waits like submit().get().
  GenerateResult generate(const std::string& prompt, const GenerateOptions& options = {},
                          TokenCallback on_piece = {});

  // Queues a request; callable from any thread. Throws bitnet::Error at once for invalid options
  // or a prompt that does not fit the context; failures while generating reach the future.
  std::future<GenerateResult> submit(const std::string& prompt, const GenerateOptions& options = {},
                                     TokenCallback on_piece = {});
  // The same with a completion callback instead of a future. Throws like submit() at once.
  void submit(const std::string& prompt, const GenerateOptions& options, TokenCallback on_piece,
              CompletionCallback on_done);

  // The same three with the prompt as token ids (TokenPrompt); throws like submit() for an id
  // outside the vocabulary or options.chat set.
  GenerateResult generate(TokenPrompt prompt, const GenerateOptions& options = {},
                          TokenCallback on_piece = {});
  std::future<GenerateResult> submit(TokenPrompt prompt, const GenerateOptions& options = {},
                                     TokenCallback on_piece = {});
  void submit(TokenPrompt prompt, const GenerateOptions& options, TokenCallback on_piece,
              CompletionCallback on_done);

  // The model's tokenizer. add_special: BOS when the vocabulary asks for it; parse_special: text
  // spelling a control token (e.g. "<|eot_id|>") becomes that token. The prompts of generate()
  // and submit() are tokenized with both on.
  std::vector<int32_t> tokenize(std::string_view text, bool add_special = true,
                                bool parse_special = true) const;
  // The text of the tokens; render_special: control tokens as their text (else ""). Throws
  // bitnet::Error for an id outside the vocabulary.
  std::string detokenize(std::span<const int32_t> tokens, bool render_special = false) const;
  // The conversation as the prompt text of the model's chat template (EngineInfo::chat_template);
  // with add_generation_prompt it ends with the opening of the assistant's turn. Tokenize it with
  // tokenize(text) (BOS and control tokens). Throws bitnet::Error naming an unknown role.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;

  const EngineInfo& info() const;
  EngineStats stats() const;
  // Time of each operation of the forward steps and of sampling so far, as JSON (the format of
  // `bitnet run --profile`; core/perf-monitor.h describes it). series: every step's times too.
  std::string profile_json(bool series = false) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Loads model_path through ModelCache::global() (once per model and configuration while cached),
// generates with a temporary Engine and returns the text.
std::string generate(const std::string& model_path, const std::string& prompt,
                     const GenerateOptions& options = {},
                     const EngineConfig& config = EngineConfig{});

}  // namespace bitnet
