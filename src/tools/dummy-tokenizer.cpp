#include "tools/dummy-tokenizer.h"

#include <cstdio>
#include <stdexcept>

namespace bitnet::model {
namespace {

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool gpt2_printable(uint32_t b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

std::string spm_byte_token(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("dummy tokenizer: " + what);
}

}  // namespace

std::string gpt2_byte_token(uint8_t b) {
  uint32_t cp = b;
  if (!gpt2_printable(b)) {
    uint32_t n = 0;  // rank of b among the non-printable bytes
    for (uint32_t x = 0; x < b; ++x) n += gpt2_printable(x) ? 0 : 1;
    cp = 256 + n;
  }
  std::string s;
  append_utf8(s, cp);
  return s;
}

std::vector<SpecialToken> llama3_special_tokens(int64_t first_id, int count) {
  if (count < 0 || count > 256)
    fail("Llama-3 has 256 added tokens, asked for " + std::to_string(count));
  std::vector<SpecialToken> out;
  int reserved = 0;
  for (int i = 0; i < count; ++i) {
    std::string text;
    switch (i) {
      case 0:
        text = "<|begin_of_text|>";
        break;
      case 1:
        text = "<|end_of_text|>";
        break;
      case 6:
        text = "<|start_header_id|>";
        break;
      case 7:
        text = "<|end_header_id|>";
        break;
      case 9:
        text = "<|eot_id|>";
        break;
      default:
        text = "<|reserved_special_token_" + std::to_string(reserved++) + "|>";
    }
    out.push_back({first_id + i, std::move(text)});
  }
  return out;
}

void write_dummy_tokenizer(const DummyTokenizerSpec& spec, formats::GgufWriter& w) {
  const bool spm = spec.kind == DummyTokenizerKind::SpmBytes;
  if (spec.n_vocab <= 0) fail("vocabulary size " + std::to_string(spec.n_vocab));
  const size_t n = static_cast<size_t>(spec.n_vocab);
  std::vector<std::string> tokens(n);
  std::vector<int32_t> types(n, 0);  // 0: not assigned yet
  auto place = [&](int64_t id, std::string text, TokenType type) {
    if (id < 0 || id >= spec.n_vocab) {
      fail("token '" + text + "' has id " + std::to_string(id) + ", outside the vocabulary of " +
           std::to_string(spec.n_vocab));
    }
    const size_t i = static_cast<size_t>(id);
    if (types[i] != 0) {
      fail("id " + std::to_string(id) + " given to both '" + tokens[i] + "' and '" + text + "'");
    }
    tokens[i] = std::move(text);
    types[i] = static_cast<int32_t>(type);
  };
  for (const SpecialToken& t : spec.control) place(t.id, t.text, TokenType::Control);
  if (spm) {
    if (spec.unk_id < 0) fail("a SentencePiece vocabulary needs an <unk> id");
    place(spec.unk_id, "<unk>", TokenType::Unknown);
  } else if (spec.unk_id >= 0) {
    fail("a byte-level BPE vocabulary has no <unk> token");
  }
  auto require_control = [&](int64_t id, const char* what) {
    if (id < 0 || id >= spec.n_vocab ||
        types[static_cast<size_t>(id)] != static_cast<int32_t>(TokenType::Control)) {
      fail(std::string(what) + " id " + std::to_string(id) + " is not one of the control tokens");
    }
  };
  require_control(spec.bos_id, "bos");
  require_control(spec.eos_id, "eos");
  if (spec.eot_id >= 0) require_control(spec.eot_id, "eot");

  // Byte tokens in the order of their GPT-2 code points (the printable bytes, then the others),
  // which is the order of Llama-3's ids 0..255: "!" is 0, "Ġ" (space) is 220.
  std::vector<uint8_t> order;
  for (int pass = 0; pass < 2; ++pass) {
    for (uint32_t b = 0; b < 256; ++b)
      if (gpt2_printable(b) == (pass == 0)) order.push_back(static_cast<uint8_t>(b));
  }
  if (spm) {
    for (uint32_t b = 0; b < 256; ++b) order[b] = static_cast<uint8_t>(b);
  }
  size_t next = 0;
  for (const uint8_t byte : order) {
    while (next < n && types[next] != 0) ++next;
    if (next == n) fail("no room for the 256 byte tokens in " + std::to_string(n) + " ids");
    place(static_cast<int64_t>(next), spm ? spm_byte_token(byte) : gpt2_byte_token(byte),
          spm ? TokenType::Byte : TokenType::Normal);
  }
  for (size_t i = 0; i < n; ++i) {
    if (types[i] != 0) continue;
    tokens[i] = "[dummy " + std::to_string(i) + "]";
    types[i] = static_cast<int32_t>(TokenType::Normal);
  }

  w.set("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  w.set("tokenizer.ggml.pre", spm ? "default" : "llama-bpe");
  w.set("tokenizer.ggml.tokens", formats::GgufValue(std::move(tokens)));
  w.set("tokenizer.ggml.token_type", formats::GgufValue(std::move(types)));
  if (spm) {
    w.set("tokenizer.ggml.scores", formats::GgufValue(std::vector<float>(n, 0.0f)));
    w.set("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(spec.unk_id));
    w.set("tokenizer.ggml.add_space_prefix", true);
  } else {
    w.set("tokenizer.ggml.merges", formats::GgufValue(std::vector<std::string>{}));
  }
  w.set("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(spec.bos_id));
  w.set("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(spec.eos_id));
  if (spec.eot_id >= 0) w.set("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(spec.eot_id));
  w.set("tokenizer.ggml.add_bos_token", true);
  w.set("tokenizer.ggml.add_eos_token", false);
}

}  // namespace bitnet::model
