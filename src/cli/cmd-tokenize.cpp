// bitnet tokenize: token ids of a text with the model's tokenizer.
#include <cstdio>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli/cli-common.h"
#include "cli/commands.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace bitnet::cli {
namespace {

constexpr const char* kUsage =
    "tokenize -m MODEL [--no-bos] [--no-parse-special] (-p TEXT | -f FILE) [--json]";

constexpr const char* kOptions =
    "  -m, --model FILE      a GGUF file with a tokenizer (a vocabulary-only file will do)\n"
    "  -p, --prompt TEXT     the text\n"
    "  -f, --file FILE       the text of FILE\n"
    "  --no-bos              do not add BOS even when the vocabulary asks for it\n"
    "  --no-parse-special    keep special-token text such as <|eot_id|> as plain text\n"
    "  --json                {model, n_tokens, ids, pieces} as one JSON object\n";

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
      file = args.path_value(a);
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
  if (model.empty()) args.fail("-m MODEL is required");
  if (have_text == !file.empty()) args.fail("give exactly one of -p TEXT and -f FILE");
  if (!file.empty()) text = read_input_file("-f", file);
  // Only the metadata is needed: small threshold so the tensor data is mapped, not read.
  std::optional<formats::GgufFile> gguf;
  std::optional<model::Tokenizer> tok;
  try {
    gguf.emplace(formats::GgufFile::open(model, formats::GgufOpenOptions{size_t{1} << 20}));
    tok.emplace(model::Tokenizer::from_gguf(*gguf));
  } catch (const std::exception& e) {
    throw InputError(e.what());
  }
  const auto ids = tok->encode(text, bos, parse_special);
  if (json) {
    nlohmann::ordered_json j;
    j["model"] = model;
    j["n_tokens"] = ids.size();
    j["ids"] = ids;
    std::vector<std::string> pieces;
    for (int32_t id : ids) pieces.emplace_back(tok->token_to_piece(id, true));
    j["pieces"] = nlohmann::ordered_json(pieces);
    std::puts(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace

BITNET_COMMAND("tokenize", kUsage,
               "token ids of a text with the model's tokenizer (BOS per the vocabulary; special\n"
               "token text such as <|eot_id|> is parsed unless --no-parse-special)",
               kOptions, cmd_tokenize);

}  // namespace bitnet::cli
