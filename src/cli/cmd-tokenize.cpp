// bitnet tokenize: token ids of a text with the model's tokenizer.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "formats/gguf.h"
#include "model/tokenizer.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "tokenize -m MODEL [--no-bos] [--no-parse-special] (-p TEXT | -f FILE) [--json]";

int cmd_tokenize(int argc, char** argv) {
  Args args(argc, argv, kUsage);
  std::string model, text, file;
  bool have_text = false, bos = true, parse_special = true, json = false;
  while (args.more()) {
    const std::string a = args.next();
    if (a == "-m" || a == "--model") {
      model = args.value(a);
    } else if (a == "-p" || a == "--prompt") {
      text = args.value(a);
      have_text = true;
    } else if (a == "-f" || a == "--file") {
      file = args.value(a);
    } else if (a == "--no-bos") {
      bos = false;
    } else if (a == "--no-parse-special") {
      parse_special = false;
    } else if (a == "--json") {
      json = true;
    } else {
      args.unknown(a);
    }
  }
  if (model.empty())
    throw std::invalid_argument("-m MODEL is required (usage: bitnet " + std::string(kUsage) + ")");
  if (have_text == !file.empty())
    throw std::invalid_argument("give exactly one of -p TEXT and -f FILE");
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(file + ": cannot open");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // Only the metadata is needed: small threshold so the tensor data is mapped, not read.
  const auto gguf = formats::GgufFile::open(model, formats::GgufOpenOptions{size_t{1} << 20});
  const auto tok = model::Tokenizer::from_gguf(gguf);
  const auto ids = tok.encode(text, bos, parse_special);
  if (json) {
    nlohmann::ordered_json j;
    j["model"] = model;
    j["n_tokens"] = ids.size();
    j["ids"] = ids;
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.emplace_back(tok.token_to_piece(id, true));
    j["pieces"] = nlohmann::ordered_json(pieces);
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

BITNET_COMMAND("tokenize", kUsage,
               "token ids of a text with the model's tokenizer (BOS per the vocabulary; special\n"
               "token text such as <|eot_id|> is parsed unless --no-parse-special)",
               cmd_tokenize);

}  // namespace bitnet::cli
