#include "tokenizer/chat-template.h"

#include <stdexcept>

namespace bitnet::model {
namespace {

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

// Jinja's `| trim` (Python str.strip) on ASCII whitespace.
std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

[[noreturn]] void bad_role(ChatTemplate tmpl, const std::string& role) {
  throw std::invalid_argument(std::string("chat template ") + chat_template_name(tmpl) +
                              ": unknown message role '" + role +
                              "' (expected system, user or assistant)");
}

// "System: " / "User: " / "Assistant: ": the role capitalised, as the BitNet 2B4T template does.
std::string_view role_label(ChatTemplate tmpl, const std::string& role) {
  if (role == "system") return "System: ";
  if (role == "user") return "User: ";
  if (role == "assistant") return "Assistant: ";
  bad_role(tmpl, role);
}

// microsoft/bitnet-b1.58-2B-4T. Sources: the model card's transformers example, quoted in
// ikawrakow/ik_llama.cpp issue #339 as "<|begin_of_text|>User: Hey, are you conscious? Can you
// talk to me?<|eot_id|>Assistant:", and ../shared/SPEC.md ("User: {msg}<|eot_id|>Assistant: ",
// bitnet.cpp's format, whose generation prompt keeps the space). System and assistant turns follow
// the same "Label: content<|eot_id|>" pattern; bitnet.cpp's own source for them could not be
// retrieved offline, so that part rests on the pattern, not on a quoted source.
void apply_bitnet(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                  std::string& out) {
  for (const auto& m : messages) {
    out += role_label(ChatTemplate::BitNet2B4T, m.role);
    out += trim(m.content);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "Assistant: ";
}

// Llama 3 instruct, meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json chat_template:
//   bos_token, then per message '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
//   content | trim + '<|eot_id|>', then '<|start_header_id|>assistant<|end_header_id|>\n\n' when
//   add_generation_prompt. llama.cpp src/llama-chat.cpp (LLM_CHAT_TEMPLATE_LLAMA_3) writes the
//   same.
void apply_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                  std::string& out) {
  for (const auto& m : messages) {
    if (m.role.empty()) bad_role(ChatTemplate::Llama3, m.role);
    out += "<|start_header_id|>";
    out += m.role;
    out += "<|end_header_id|>\n\n";
    out += trim(m.content);
    out += "<|eot_id|>";
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

// No official source: our own format for models without a chat template. One role-labelled line
// per message; the generation prompt has no trailing space because BPE vocabularies attach the
// space to the following word.
void apply_plain(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                 std::string& out) {
  for (const auto& m : messages) {
    out += role_label(ChatTemplate::Plain, m.role);
    out += trim(m.content);
    out += '\n';
  }
  if (add_generation_prompt) out += "Assistant:";
}

}  // namespace

const char* chat_template_name(ChatTemplate tmpl) {
  switch (tmpl) {
    case ChatTemplate::BitNet2B4T:
      return "bitnet-2b4t";
    case ChatTemplate::Llama3:
      return "llama3";
    case ChatTemplate::Plain:
      return "plain";
  }
  return "unknown";
}

std::optional<ChatTemplate> chat_template_from_name(std::string_view name) {
  for (const auto t : {ChatTemplate::BitNet2B4T, ChatTemplate::Llama3, ChatTemplate::Plain})
    if (name == chat_template_name(t)) return t;
  return std::nullopt;
}

std::optional<ChatTemplate> recognise_chat_template(std::string_view t) {
  // A bare template name, as llama.cpp also accepts in place of Jinja text.
  if (const auto named = chat_template_from_name(trim(t))) return *named;
  // The same distinctive substrings llama.cpp's llm_chat_detect_template uses for Llama 3.
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>"))
    return ChatTemplate::Llama3;
  // BitNet 2B4T's template spells the generation prompt 'Assistant: ' and ends turns with
  // <|eot_id|>; the user label may be written out ("User: ") or built by `role | capitalize`.
  if (contains(t, "Assistant: ") && contains(t, "<|eot_id|>")) return ChatTemplate::BitNet2B4T;
  return std::nullopt;
}

ChatTemplate detect_chat_template(const std::optional<std::string>& jinja, bool vocab_has_eot,
                                  bool vocab_has_header_tokens) {
  if (jinja && !jinja->empty()) {
    if (const auto known = recognise_chat_template(*jinja)) return *known;
  }
  if (vocab_has_eot) return ChatTemplate::BitNet2B4T;
  if (vocab_has_header_tokens) return ChatTemplate::Llama3;
  return ChatTemplate::Plain;
}

ChatTemplateChoice choose_chat_template(std::string_view forced,
                                        const std::optional<std::string>& jinja, bool vocab_has_eot,
                                        bool vocab_has_header_tokens) {
  ChatTemplateChoice c;
  if (!forced.empty()) {
    const auto named = chat_template_from_name(forced);
    if (!named) {
      throw std::invalid_argument("unknown chat template '" + std::string(forced) +
                                  "' (known: " + kChatTemplateNames + ")");
    }
    c.tmpl = *named;
    return c;
  }
  c.tmpl = detect_chat_template(jinja, vocab_has_eot, vocab_has_header_tokens);
  if (jinja && !jinja->empty() && !recognise_chat_template(*jinja)) {
    c.note = std::string("the model's tokenizer.chat_template is not a format this build knows (") +
             kChatTemplateNames + "); using " + chat_template_name(c.tmpl) +
             ", chosen from the vocabulary";
  }
  return c;
}

std::string apply_chat_template(ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) {
  std::string out;
  switch (tmpl) {
    case ChatTemplate::BitNet2B4T:
      apply_bitnet(messages, add_generation_prompt, out);
      break;
    case ChatTemplate::Llama3:
      apply_llama3(messages, add_generation_prompt, out);
      break;
    case ChatTemplate::Plain:
      apply_plain(messages, add_generation_prompt, out);
      break;
  }
  return out;
}

bool chat_template_adds_bos(ChatTemplate tmpl) {
  switch (tmpl) {
    case ChatTemplate::BitNet2B4T:  // "<|begin_of_text|>User: ..." in the model card example
    case ChatTemplate::Llama3:      // bos_token opens the official template
    case ChatTemplate::Plain:
      return true;
  }
  return true;
}

}  // namespace bitnet::model
