#include "convert/hf-tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer-internal.h"

namespace bitnet::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace tokenizer_detail;

// Llama-3's (and cl100k's) pre-tokenizer regex as tokenizer.json spells it.
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // U+2581, SentencePiece's space

[[noreturn]] void fail(const std::string& file, const std::string& path, const std::string& what) {
  throw std::invalid_argument(file + ": " + path + ": " + what);
}

json read_json(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::invalid_argument(p.string() + ": cannot be read");
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    throw std::invalid_argument(p.string() + ": not valid JSON: " + e.what());
  }
}

// node[key] when node is an object holding a string there, else "".
std::string str_member(const json& node, const char* key) {
  if (!node.is_object()) return {};
  const auto it = node.find(key);
  return it != node.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string type_of(const json& node) {
  return str_member(node, "type");
}

// node[key] as a bool: `fallback` when absent or null, an error naming path.key for other types.
bool bool_member(const json& node, const char* key, bool fallback, const std::string& file,
                 const std::string& path) {
  const auto it = node.find(key);
  if (it == node.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    fail(file, path + "." + key, "expected true or false, found " + it->dump());
  return it->get<bool>();
}

struct Node {
  std::string path;  // JSON path, "pre_tokenizer.pretokenizers[1]"
  const json* node;
};

// The components of a normalizer / pre-tokenizer / post-processor in application order, with
// Sequences flattened (their list is under `list_key`).
void flatten(const json& node, const std::string& path, const char* list_key,
             std::vector<Node>& out) {
  if (node.is_null()) return;
  if (!node.is_object()) return out.push_back({path, &node});
  if (type_of(node) != "Sequence") return out.push_back({path, &node});
  const auto list = node.find(list_key);
  if (list == node.end() || !list->is_array()) return out.push_back({path, &node});
  for (size_t i = 0; i < list->size(); ++i) {
    flatten((*list)[i], path + "." + list_key + "[" + std::to_string(i) + "]", list_key, out);
  }
}

std::vector<Node> components(const json& root, const char* key, const char* list_key) {
  std::vector<Node> out;
  if (const auto it = root.find(key); it != root.end()) flatten(*it, key, list_key, out);
  return out;
}

// A special token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> added_token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) {
    const auto c = v.find("content");
    if (c != v.end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

bool is_byte_token(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.starts_with("<0x") && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::unordered_map<std::string, int32_t> ids;  // first id of each string

  std::optional<int32_t> find(const std::string& s) const {
    const auto it = ids.find(s);
    if (it == ids.end()) return std::nullopt;
    return it->second;
  }
};

int32_t read_id(const json& v, const std::string& file, const std::string& path) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
      v.get<int64_t>() >= std::numeric_limits<int32_t>::max()) {
    fail(file, path, "expected a token id (a non-negative integer), found " + v.dump());
  }
  return static_cast<int32_t>(v.get<int64_t>());
}

// model.vocab + added_tokens, by id.
Vocab read_vocab(const json& tj, const json& model, const std::string& file) {
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    fail(file, "model.vocab", "expected an object of token -> id");
  }
  std::vector<std::pair<int32_t, const std::string*>> entries;
  for (const auto& [text, id] : vocab->items()) {
    entries.emplace_back(read_id(id, file, "model.vocab[\"" + text + "\"]"), &text);
  }
  const json* added = nullptr;
  if (const auto it = tj.find("added_tokens"); it != tj.end() && !it->is_null()) {
    if (!it->is_array()) fail(file, "added_tokens", "expected an array");
    added = &*it;
  }
  int64_t n = 0;
  for (const auto& e : entries) n = std::max<int64_t>(n, int64_t{e.first} + 1);
  struct Added {
    int32_t id;
    std::string content;
    bool special;
  };
  std::vector<Added> added_tokens;
  for (size_t i = 0; added && i < added->size(); ++i) {
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    const json& a = (*added)[i];
    const auto id = a.find("id");
    const auto content = a.find("content");
    if (!a.is_object() || id == a.end() || content == a.end() || !content->is_string()) {
      fail(file, path, "expected an object with 'id' and 'content'");
    }
    const auto special = a.find("special");
    added_tokens.push_back({read_id(*id, file, path + ".id"), content->get<std::string>(),
                            special != a.end() && special->is_boolean() && special->get<bool>()});
    n = std::max<int64_t>(n, int64_t{added_tokens.back().id} + 1);
  }

  Vocab v;
  v.tokens.resize(static_cast<size_t>(n));
  v.types.assign(static_cast<size_t>(n), kTypeNormal);
  std::vector<bool> have(static_cast<size_t>(n), false);
  for (const auto& [id, text] : entries) {
    const auto i = static_cast<size_t>(id);
    if (have[i]) {
      fail(file, "model.vocab",
           "id " + std::to_string(id) + " is given to both '" + v.tokens[i] + "' and '" + *text +
               "'");
    }
    v.tokens[i] = *text;
    have[i] = true;
  }
  for (size_t k = 0; k < added_tokens.size(); ++k) {
    const Added& a = added_tokens[k];
    const auto i = static_cast<size_t>(a.id);
    if (have[i] && v.tokens[i] != a.content) {
      fail(file, "added_tokens[" + std::to_string(k) + "]",
           "id " + std::to_string(a.id) + " is '" + a.content + "' here but '" + v.tokens[i] +
               "' elsewhere in tokenizer.json");
    }
    v.tokens[i] = a.content;
    have[i] = true;
    v.types[i] = a.special ? kTypeControl : kTypeUserDefined;
  }
  for (size_t i = 0; i < have.size(); ++i) {
    if (!have[i]) {
      fail(file, "model.vocab",
           "no token has id " + std::to_string(i) + " (model.vocab and added_tokens leave a gap " +
               "below the highest id " + std::to_string(n - 1) + ")");
    }
  }
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    v.ids.emplace(v.tokens[i], static_cast<int32_t>(i));
  }
  return v;
}

// model.merges: "a b" strings (tokenizers < 0.20) or [a, b] pairs.
std::vector<std::pair<std::string, std::string>> read_merges(const json& model, const Vocab& v,
                                                             const std::string& file) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto merges = model.find("merges");
  if (merges == model.end() || merges->is_null()) return out;
  if (!merges->is_array()) fail(file, "model.merges", "expected an array");
  out.reserve(merges->size());
  for (size_t i = 0; i < merges->size(); ++i) {
    const json& m = (*merges)[i];
    const std::string path = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        fail(file, path, "'" + s + "' is not two tokens joined by one space");
      }
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(file, path, "expected \"a b\" or [\"a\", \"b\"], found " + m.dump());
    }
    const auto& [a, b] = out.back();
    for (const std::string& part : {a, b, a + b}) {
      if (!v.find(part)) fail(file, path, "'" + part + "' is not a token of model.vocab");
    }
  }
  return out;
}

struct Shape {
  bool spm = false;
  std::string pre;  // byte-level only
  bool add_space_prefix = false;
};

Shape byte_level_shape(const std::vector<Node>& pre, const std::vector<Node>& norm,
                       const std::string& file) {
  if (!norm.empty()) {
    fail(file, norm[0].path,
         "normalizer '" + type_of(*norm[0].node) +
             "' is not supported with a ByteLevel pre-tokenizer (expected none)");
  }
  bool llama3_split = false, byte_level_regex = false;
  for (const Node& n : pre) {
    const std::string t = type_of(*n.node);
    if (t == "Split") {
      const auto pattern = n.node->find("pattern");
      const std::string regex =
          pattern == n.node->end() ? std::string() : str_member(*pattern, "Regex");
      if (regex.empty()) {
        fail(file, n.path + ".pattern",
             "expected {\"Regex\": ...}, found " +
                 (pattern == n.node->end() ? std::string("nothing") : pattern->dump()));
      }
      if (regex != kLlama3Regex) {
        fail(file, n.path + ".pattern.Regex",
             "unsupported pre-tokenizer regex '" + regex +
                 "' (supported: Llama-3's, or ByteLevel's own GPT-2 regex)");
      }
      if (bool_member(*n.node, "invert", false, file, n.path) ||
          str_member(*n.node, "behavior") != "Isolated") {
        fail(file, n.path, "expected behavior Isolated, not inverted");
      }
      llama3_split = true;
    } else if (t == "ByteLevel") {
      if (bool_member(*n.node, "add_prefix_space", false, file, n.path)) {
        fail(file, n.path + ".add_prefix_space", "true is not supported");
      }
      byte_level_regex = byte_level_regex || bool_member(*n.node, "use_regex", true, file, n.path);
    } else {
      fail(file, n.path, "unsupported pre-tokenizer '" + t + "' (supported: Split, ByteLevel)");
    }
  }
  if (llama3_split == byte_level_regex) {
    fail(file, "pre_tokenizer",
         llama3_split ? "both a Split regex and ByteLevel's use_regex: not supported"
                      : "no pre-tokenizer regex (ByteLevel use_regex false and no Split): not "
                        "supported");
  }
  return {false, llama3_split ? "llama-bpe" : "default", false};
}

Shape sentencepiece_shape(const std::vector<Node>& pre, const std::vector<Node>& norm,
                          const std::string& file) {
  Shape s{true, "", false};
  bool escapes_spaces = false;
  for (const Node& n : norm) {
    const std::string t = type_of(*n.node);
    if (t == "Prepend" && str_member(*n.node, "prepend") == kSpaceEscape) {
      s.add_space_prefix = true;
    } else if (t == "Replace" && str_member(*n.node, "content") == kSpaceEscape &&
               n.node->contains("pattern") && str_member((*n.node)["pattern"], "String") == " ") {
      escapes_spaces = true;
    } else {
      fail(file, n.path,
           "unsupported normalizer '" + t +
               "' (supported: Prepend U+2581 and Replace ' ' with U+2581)");
    }
  }
  for (const Node& n : pre) {
    const std::string t = type_of(*n.node);
    if (t != "Metaspace") {
      fail(file, n.path, "unsupported pre-tokenizer '" + t + "' with SentencePiece-style BPE");
    }
    if (str_member(*n.node, "replacement") != kSpaceEscape) {
      fail(file, n.path + ".replacement", "expected U+2581");
    }
    // tokenizers' default for "split" is true: words are then tokenized apart, which the
    // SentencePiece encoder does not do.
    if (bool_member(*n.node, "split", true, file, n.path)) {
      fail(file, n.path + ".split", "only false is supported");
    }
    if (const std::string scheme = str_member(*n.node, "prepend_scheme"); !scheme.empty()) {
      s.add_space_prefix = scheme != "never";
    } else {
      s.add_space_prefix = bool_member(*n.node, "add_prefix_space", true, file, n.path);
    }
    escapes_spaces = true;
  }
  if (!escapes_spaces) {
    fail(file, "normalizer", "no Replace ' ' with U+2581 and no Metaspace pre-tokenizer");
  }
  return s;
}

// add_bos / add_eos from a TemplateProcessing post-processor: whether its "single" template
// starts with the BOS / ends with the EOS special token.
void template_specials(const json& tj, const Vocab& v, std::optional<int32_t> bos,
                       std::optional<int32_t> eos, std::optional<bool>& add_bos,
                       std::optional<bool>& add_eos) {
  for (const Node& n : components(tj, "post_processor", "processors")) {
    if (type_of(*n.node) != "TemplateProcessing") continue;
    const auto single = n.node->find("single");
    if (single == n.node->end() || !single->is_array() || single->empty()) continue;
    auto special = [&](const json& item) -> std::optional<int32_t> {
      if (!item.is_object() || !item.contains("SpecialToken")) return std::nullopt;
      const std::string id = str_member(item["SpecialToken"], "id");
      return id.empty() ? std::nullopt : v.find(id);
    };
    if (!add_bos) add_bos = bos && special(single->front()) == bos;
    if (!add_eos) add_eos = eos && special(single->back()) == eos;
  }
}

}  // namespace

std::optional<HfTokenizerSummary> add_hf_tokenizer(const std::string& dir, int64_t n_vocab,
                                                   formats::GgufWriter& w) {
  const fs::path tj_path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(tj_path)) return std::nullopt;
  const std::string file = tj_path.string();
  const json tj = read_json(tj_path);
  if (!tj.is_object()) fail(file, "(top level)", "expected an object");
  const auto model_it = tj.find("model");
  if (model_it == tj.end() || !model_it->is_object()) fail(file, "model", "missing");
  const json& model = *model_it;
  const std::string model_type = type_of(model);
  if (model_type != "BPE") {
    fail(file, "model.type",
         "unsupported tokenizer model '" + model_type +
             "' (supported: BPE; Unigram, WordPiece and WordLevel are not)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = model.find(key);
    if (it != model.end() && !it->is_null() &&
        !(it->is_string() && it->get<std::string>().empty())) {
      fail(file, std::string("model.") + key, "not supported (found " + it->dump() + ")");
    }
  }
  if (const auto d = model.find("dropout"); d != model.end() && !d->is_null() && *d != 0) {
    fail(file, "model.dropout", "BPE dropout is not supported (found " + d->dump() + ")");
  }
  const bool byte_fallback = bool_member(model, "byte_fallback", false, file, "model");

  const std::vector<Node> pre = components(tj, "pre_tokenizer", "pretokenizers");
  const std::vector<Node> norm = components(tj, "normalizer", "normalizers");
  auto any = [](const std::vector<Node>& nodes, const char* type) {
    return std::any_of(nodes.begin(), nodes.end(),
                       [&](const Node& n) { return type_of(*n.node) == type; });
  };
  Shape shape;
  if (any(pre, "ByteLevel")) {
    shape = byte_level_shape(pre, norm, file);
  } else if (any(pre, "Metaspace") || any(norm, "Replace")) {
    shape = sentencepiece_shape(pre, norm, file);
  } else {
    fail(file, "pre_tokenizer",
         "neither ByteLevel (byte-level BPE) nor Metaspace / a U+2581 normalizer "
         "(SentencePiece-style BPE): not supported");
  }

  Vocab v = read_vocab(tj, model, file);
  const size_t n_tok = v.tokens.size();
  if (static_cast<int64_t>(n_tok) > n_vocab) {
    fail(file, "model.vocab",
         std::to_string(n_tok) + " tokens, more than the model's vocab_size " +
             std::to_string(n_vocab) + " (embedding rows)");
  }
  const auto merges = read_merges(model, v, file);

  // Special tokens: tokenizer_config.json, then config.json's ids (llama.cpp's SpecialVocab).
  const fs::path tc_path = fs::path(dir) / "tokenizer_config.json";
  const fs::path cfg_path = fs::path(dir) / "config.json";
  const json tcfg = fs::exists(tc_path) ? read_json(tc_path) : json::object();
  const json cfg = fs::exists(cfg_path) ? read_json(cfg_path) : json::object();
  if (!tcfg.is_object()) fail(tc_path.string(), "(top level)", "expected an object");
  auto special = [&](const std::string& name) -> std::optional<int32_t> {
    const std::string key = name + "_token";
    if (const auto it = tcfg.find(key); it != tcfg.end() && !it->is_null()) {
      const auto text = added_token_text(*it);
      if (!text) fail(tc_path.string(), key, "expected a string or {\"content\": ...}");
      const auto id = v.find(*text);
      if (!id) fail(tc_path.string(), key, "'" + *text + "' is not a token of " + file);
      return id;
    }
    if (const auto it = cfg.find(key + "_id"); cfg.is_object() && it != cfg.end()) {
      const json& id = it->is_array() && !it->empty() ? it->front() : *it;
      if (id.is_null()) return std::nullopt;
      const int32_t i = read_id(id, cfg_path.string(), key + "_id");
      if (static_cast<size_t>(i) >= n_tok) {
        fail(
            cfg_path.string(), key + "_id",
            std::to_string(i) + " is outside the tokenizer's " + std::to_string(n_tok) + " tokens");
      }
      return i;
    }
    return std::nullopt;
  };
  const std::optional<int32_t> bos = special("bos"), eos = special("eos"), pad = special("pad");
  std::optional<int32_t> unk;
  if (const auto u = model.find("unk_token"); u != model.end() && !u->is_null()) {
    if (!u->is_string() || !(unk = v.find(u->get<std::string>()))) {
      fail(file, "model.unk_token", u->dump() + " is not a token of model.vocab");
    }
    v.types[static_cast<size_t>(*unk)] = kTypeUnknown;
  }
  const std::optional<int32_t> eot = v.find("<|eot_id|>");

  std::optional<bool> add_bos, add_eos;
  for (auto [key, slot] : {std::pair{"add_bos_token", &add_bos}, {"add_eos_token", &add_eos}}) {
    if (const auto it = tcfg.find(key); it != tcfg.end() && !it->is_null()) {
      if (!it->is_boolean()) fail(tc_path.string(), key, "expected true or false");
      *slot = it->get<bool>();
    }
  }
  template_specials(tj, v, bos, eos, add_bos, add_eos);

  if (shape.spm && byte_fallback) {
    for (size_t i = 0; i < n_tok; ++i) {
      if (v.types[i] == kTypeNormal && is_byte_token(v.tokens[i])) v.types[i] = kTypeByte;
    }
  }
  std::vector<float> scores;
  if (shape.spm) {
    // See the header: -(rank of the first merge producing the token).
    std::vector<int64_t> first_rank(n_tok, -1);
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto id = static_cast<size_t>(*v.find(merges[r].first + merges[r].second));
      if (first_rank[id] < 0) first_rank[id] = static_cast<int64_t>(r);
    }
    scores.assign(static_cast<size_t>(n_vocab), 0.0f);
    for (size_t i = 0; i < n_tok; ++i) {
      if (v.types[i] != kTypeNormal) continue;
      const int64_t rank =
          first_rank[i] >= 0 ? first_rank[i] : static_cast<int64_t>(merges.size() + i);
      scores[i] = -static_cast<float>(rank);
    }
  }
  std::vector<std::string> merge_strings;
  if (!shape.spm) {
    merge_strings.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& [a, b] = merges[r];
      // GGUF readers split "a b" at the first space after the first character.
      if (a.find(' ', 1) != std::string::npos) {
        fail(file, "model.merges[" + std::to_string(r) + "]",
             "token '" + a + "' holds a space, which a GGUF \"a b\" merge cannot carry");
      }
      merge_strings.push_back(a + " " + b);
    }
  }
  const size_t n_padding = static_cast<size_t>(n_vocab) - n_tok;
  for (size_t i = n_tok; i < static_cast<size_t>(n_vocab); ++i) {
    v.tokens.push_back("[PAD" + std::to_string(i) + "]");
    v.types.push_back(kTypeUnused);
  }

  // Chat template: tokenizer_config.json's string, or its named list ("default" is the main one),
  // else a chat_template.jinja file (newer transformers save it separately).
  std::vector<std::pair<std::string, std::string>> templates;  // key suffix, template
  if (const auto it = tcfg.find("chat_template"); it != tcfg.end() && !it->is_null()) {
    if (it->is_string()) {
      templates.emplace_back("", it->get<std::string>());
    } else if (it->is_array()) {
      for (size_t i = 0; i < it->size(); ++i) {
        const json& t = (*it)[i];
        const std::string name = str_member(t, "name");
        if (name.empty() || !t.contains("template") || !t["template"].is_string()) {
          fail(tc_path.string(), "chat_template[" + std::to_string(i) + "]",
               "expected {\"name\": ..., \"template\": ...}");
        }
        templates.emplace_back(name == "default" ? "" : "." + name,
                               t["template"].get<std::string>());
      }
    } else {
      fail(tc_path.string(), "chat_template", "expected a string or a list of named templates");
    }
  } else if (const fs::path jinja = fs::path(dir) / "chat_template.jinja"; fs::exists(jinja)) {
    std::ifstream f(jinja, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    if (!f) throw std::invalid_argument(jinja.string() + ": cannot be read");
    templates.emplace_back("", ss.str());
  }

  HfTokenizerSummary summary;
  summary.model = shape.spm ? "llama" : "gpt2";
  summary.pre = shape.pre;
  summary.n_tokens = v.tokens.size();
  summary.n_padding = n_padding;
  summary.n_merges = merges.size();

  w.set("tokenizer.ggml.model", summary.model);
  if (!shape.spm) w.set("tokenizer.ggml.pre", shape.pre);
  w.set("tokenizer.ggml.tokens", formats::GgufValue(std::move(v.tokens)));
  w.set("tokenizer.ggml.token_type", formats::GgufValue(std::move(v.types)));
  if (shape.spm) {
    w.set("tokenizer.ggml.scores", formats::GgufValue(std::move(scores)));
    w.set("tokenizer.ggml.add_space_prefix", shape.add_space_prefix);
  } else {
    w.set("tokenizer.ggml.merges", formats::GgufValue(std::move(merge_strings)));
  }
  const std::pair<const char*, std::optional<int32_t>> ids[] = {
      {"tokenizer.ggml.bos_token_id", bos},     {"tokenizer.ggml.eos_token_id", eos},
      {"tokenizer.ggml.unknown_token_id", unk}, {"tokenizer.ggml.padding_token_id", pad},
      {"tokenizer.ggml.eot_token_id", eot},
  };
  for (const auto& [key, id] : ids) {
    if (id) w.set(key, static_cast<uint32_t>(*id));
  }
  if (add_bos) w.set("tokenizer.ggml.add_bos_token", *add_bos);
  if (add_eos) w.set("tokenizer.ggml.add_eos_token", *add_eos);
  for (const auto& [suffix, text] : templates) w.set("tokenizer.chat_template" + suffix, text);
  return summary;
}

}  // namespace bitnet::model
