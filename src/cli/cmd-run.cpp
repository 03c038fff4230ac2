// bitnet run: generate text from a prompt, streaming tokens to stdout; timings on stderr.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "cli/default-model.h"
#include "core/perf-monitor.h"
#include "model/chat-template.h"
#include "model/sampler.h"
#include "model/tokenizer.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "run [-m MODEL] -p PROMPT [-n N] [-t THREADS] [-c CTX] [--temp T] [--top-k K] [--top-p P]\n"
    "      [--min-p P] [--repeat-penalty R] [--seed S] [--stop TEXT]... [--chat] [--kv f16|f32]\n"
    "      [--profile FILE.json] [--profile-series]";

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int cmd_run(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  CommonModelOptions mo;
  std::string prompt;
  bool have_prompt = false, chat = false, profile_series = false;
  std::string profile_path;
  int64_t n_predict = 64;
  model::SamplerParams sp;
  std::vector<std::string> stops;
  while (args.more()) {
    if (mo.parse(args)) continue;
    const std::string a = args.next();
    if (a == "-p" || a == "--prompt") {
      prompt = args.value(a);
      have_prompt = true;
    } else if (a == "-n" || a == "--n-predict") {
      n_predict = args.int_value(a, 0, int64_t{1} << 24);
    } else if (a == "--temp") {
      sp.temperature = static_cast<float>(args.float_value(a, 0, 100));
    } else if (a == "--top-k") {
      sp.top_k = static_cast<int32_t>(args.int_value(a, 0, 1 << 30));
    } else if (a == "--top-p") {
      sp.top_p = static_cast<float>(args.float_value(a, 0, 1));
    } else if (a == "--min-p") {
      sp.min_p = static_cast<float>(args.float_value(a, 0, 1));
    } else if (a == "--repeat-penalty") {
      sp.repeat_penalty = static_cast<float>(args.float_value(a, 0, 100));
    } else if (a == "--seed") {
      sp.seed = static_cast<uint64_t>(args.int_value(a, 0, INT64_MAX));
    } else if (a == "--stop") {
      stops.push_back(args.value(a));
    } else if (a == "--chat") {
      chat = true;
    } else if (a == "--profile") {
      profile_path = args.value(a);
    } else if (a == "--profile-series") {
      profile_series = true;
    } else {
      args.unknown(a);
    }
  }
  if (!have_prompt)
    throw std::invalid_argument("-p PROMPT is required (usage: bitnet " + std::string(kUsage) +
                                ")");
  if (profile_series && profile_path.empty()) {
    throw std::invalid_argument("--profile-series needs --profile FILE.json");
  }
  std::ofstream profile_out;
  if (!profile_path.empty()) {  // opened first: a bad path fails before the model loads
    profile_out.open(profile_path);
    if (!profile_out) throw std::invalid_argument("--profile: cannot write " + profile_path);
  }
  PerfMonitor monitor;
  PerfMonitor* mon = profile_path.empty() ? nullptr : &monitor;
  if (mo.model.empty()) mo.model = default_model();

  const auto weights = load_model(mo);
  const model::Tokenizer tok = model::Tokenizer::from_gguf(weights->file());
  if (tok.n_vocab() != weights->config().n_vocab) {
    throw std::invalid_argument(mo.model + ": the tokenizer has " + std::to_string(tok.n_vocab()) +
                                " tokens but the model's vocabulary is " +
                                std::to_string(weights->config().n_vocab));
  }
  std::string text = prompt;
  if (chat) {
    const auto jinja = weights->file().find_string("tokenizer.chat_template");
    const auto tmpl =
        model::detect_chat_template(jinja, tok.find_token("<|eot_id|>").has_value(),
                                    tok.find_token("<|start_header_id|>").has_value());
    text = model::apply_chat_template(tmpl, {{"user", prompt}}, true);
  }
  std::vector<int32_t> prompt_ids;
  {
    PerfScope s(mon, PerfOp::Tokenize);
    prompt_ids = tok.encode(text, true, true);
  }
  ThreadPool pool(mo.threads);
  model::BitNetSession session(*weights, mo.session_options(), pool);
  session.set_monitor(mon);
  if (static_cast<int64_t>(prompt_ids.size()) >= session.n_ctx()) {
    throw std::invalid_argument("the prompt has " + std::to_string(prompt_ids.size()) +
                                " tokens but the context holds " + std::to_string(session.n_ctx()) +
                                " (use -c to raise it, up to the model's " +
                                std::to_string(weights->config().n_ctx_train) + ")");
  }
  model::Sampler sampler(sp, static_cast<int32_t>(session.n_vocab()));
  model::StopMatcher stop(stops);
  model::StreamingDetokenizer detok(tok, false, false);
  std::vector<float> logits(static_cast<size_t>(session.n_vocab()));
  std::vector<int32_t> history = prompt_ids;
  history.reserve(prompt_ids.size() + static_cast<size_t>(n_predict));

  std::fputs(chat ? "" : prompt.c_str(), stdout);
  std::fflush(stdout);
  const auto t0 = Clock::now();
  session.eval(prompt_ids, logits.data(), false);
  const auto t_prompt = Clock::now();
  Clock::time_point t_first = t_prompt;
  int64_t generated = 0;
  const char* why = "length limit";
  for (; generated < n_predict; ++generated) {
    int32_t next;
    {
      PerfScope s(mon, PerfOp::Sampling);
      next = sampler.sample(logits.data(), history);
    }
    if (generated == 0) t_first = Clock::now();
    if (tok.is_eog(next)) {
      why = "end of generation token";
      break;
    }
    history.push_back(next);
    model::StopMatcher::Step step;
    {
      PerfScope s(mon, PerfOp::Detokenize);
      step = stop.feed(detok.push(next));
    }
    std::fwrite(step.emit.data(), 1, step.emit.size(), stdout);
    std::fflush(stdout);
    if (step.stopped) {
      why = "stop string";
      ++generated;
      break;
    }
    if (session.n_past() >= session.n_ctx()) {
      why = "context full";
      ++generated;
      break;
    }
    if (generated + 1 < n_predict)
      session.eval(std::span<const int32_t>(&next, 1), logits.data(), false);
  }
  if (!stop.stopped()) {
    const auto rest = stop.feed(detok.flush());
    std::fwrite(rest.emit.data(), 1, rest.emit.size(), stdout);
    const auto tail = stop.flush();
    std::fwrite(tail.data(), 1, tail.size(), stdout);
  }
  std::fputs("\n", stdout);
  std::fflush(stdout);
  const auto t_end = Clock::now();
  const double tp = seconds(t0, t_prompt), tg = seconds(t_first, t_end);
  std::fprintf(stderr,
               "\nprompt: %zu tokens in %.3f s (%.1f t/s) | generation: %lld tokens in %.3f s "
               "(%.1f t/s) | time to first token: %.1f ms | stopped: %s | threads %d, kernels %s\n",
               prompt_ids.size(), tp, static_cast<double>(prompt_ids.size()) / tp,
               static_cast<long long>(generated), tg,
               generated > 1 ? static_cast<double>(generated - 1) / tg : 0.0,
               1000.0 * seconds(t0, t_first), why, pool.size(),
               kernels::isa_name(kernels::active_kernels().isa));
  if (mon) {
    monitor.write_json(profile_out, profile_series);
    profile_out << "\n";
    if (!profile_out.flush())
      throw std::runtime_error("--profile: writing " + profile_path + " failed");
    std::fprintf(stderr, "profile: %s (%lld steps)\n", profile_path.c_str(),
                 static_cast<long long>(monitor.steps()));
  }
  return 0;
}

}  // namespace

BITNET_COMMAND("run", kUsage,
               "generate text, streamed to stdout; prompt t/s, generation t/s and time to first\n"
               "token on stderr. Without -m: a built-in 2B4T-shaped model with random weights,\n"
               "generated on first use. --chat wraps the prompt in the model's chat template.\n"
               "--profile FILE.json writes the time of each operation (matmul kinds, attention,\n"
               "norms, lm head, sampling, tokenization), per step P50/P95/P99 included;\n"
               "--profile-series adds every step's times",
               cmd_run);

}  // namespace bitnet::cli
