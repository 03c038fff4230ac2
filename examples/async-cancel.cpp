// Requests submitted from several threads and decoded together (continuous batching, two at a
// time), one of them cancelled, and one more with a completion callback instead of a future.
//   example-async-cancel [MODEL]
#include <bitnet/engine.h>

#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const std::string model = argc > 1 && *argv[1] ? argv[1] : BITNET_EXAMPLE_MODEL;
  try {
    bitnet::EngineConfig config;
    config.max_concurrent_requests = 2;
    bitnet::Engine engine(model, config);

    const std::vector<std::string> prompts = {"The capital of France is", "1, 2, 3,",
                                              "Hello, my name is", "In the beginning"};
    std::vector<std::future<bitnet::GenerateResult>> results(prompts.size());
    bitnet::GenerateOptions cancelled;  // the third request: cancelled once it has one token
    bitnet::CancelToken token = cancelled.cancel;
    std::vector<std::thread> clients;
    for (size_t i = 0; i < prompts.size(); ++i) {
      clients.emplace_back([&, i] {
        bitnet::GenerateOptions options = i == 2 ? cancelled : bitnet::GenerateOptions{};
        options.max_tokens = 24;
        bitnet::TokenCallback on_piece;
        if (i == 2) {
          on_piece = [token](std::string_view) {
            token.cancel();  // any thread may call this; here the request's own callback does
            return true;
          };
        }
        results[i] = engine.submit(prompts[i], options, on_piece);
      });
    }
    for (std::thread& t : clients) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const bitnet::GenerateResult r = results[i].get();
      std::printf("[%zu] %s|%s| (%zu tokens, %s, first token after %.2f ms)\n", i,
                  prompts[i].c_str(), r.text.c_str(), r.tokens.size(),
                  bitnet::to_string(r.stop_reason), r.timings.time_to_first_token_ms);
    }
    // The callback form: called on the engine's scheduler thread with the result or the error.
    std::promise<void> done;
    engine.submit("Once upon a time", bitnet::GenerateOptions{}, {},
                  [&done](const bitnet::GenerateResult* r, std::exception_ptr error) {
                    if (r) std::printf("[callback] Once upon a time|%s|\n", r->text.c_str());
                    if (error)
                      done.set_exception(error);
                    else
                      done.set_value();
                  });
    done.get_future().get();
    const bitnet::EngineStats s = engine.stats();
    std::printf("requests completed: %llu in %llu batched steps (%llu tokens evaluated)\n",
                static_cast<unsigned long long>(s.requests_completed),
                static_cast<unsigned long long>(s.steps),
                static_cast<unsigned long long>(s.step_tokens));
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
