// Chat templates: a conversation turned into the prompt text a chat model was trained on. No Jinja
// interpreter: the GGUF's tokenizer.chat_template is only inspected to recognise a known format
// (llama.cpp's llm_chat_detect_template does the same), which is then applied by code.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::model {

enum class ChatTemplate {
  BitNet2B4T,  // "System: ..<|eot_id|>User: ..<|eot_id|>Assistant: " (microsoft/bitnet-b1.58-2B-4T)
  Llama3,      // "<|start_header_id|>role<|end_header_id|>\n\n..<|eot_id|>"
  Plain,       // role-labelled lines for models without a chat format
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (Llama 3 also takes any other header role)
  std::string content;
};

// Name for --help and inspect: "bitnet-2b4t", "llama3", "plain".
const char* chat_template_name(ChatTemplate tmpl);
// The template of a name as chat_template_name spells it, or nullopt.
std::optional<ChatTemplate> chat_template_from_name(std::string_view name);
inline constexpr const char* kChatTemplateNames = "bitnet-2b4t, llama3, plain";

// From the GGUF key tokenizer.chat_template (Jinja text) when present and recognised; otherwise
// from the vocabulary: BitNet 2B4T's format when it has <|eot_id|>, else Llama 3's when it has
// <|start_header_id|>/<|end_header_id|>, else plain.
ChatTemplate detect_chat_template(const std::optional<std::string>& jinja, bool vocab_has_eot,
                                  bool vocab_has_header_tokens);

// The known format a tokenizer.chat_template text (or a bare name) is, or nullopt.
std::optional<ChatTemplate> recognise_chat_template(std::string_view jinja);

// The template to use: `forced` (a name as chat_template_name spells it) when not empty, else
// detect_chat_template. `note` says when the choice is a fallback the user should know about (the
// file's template is not one this build knows). Throws std::invalid_argument for an unknown name.
struct ChatTemplateChoice {
  ChatTemplate tmpl = ChatTemplate::Plain;
  std::string note;
};
ChatTemplateChoice choose_chat_template(std::string_view forced,
                                        const std::optional<std::string>& jinja, bool vocab_has_eot,
                                        bool vocab_has_header_tokens);

// The prompt text for `messages`; with add_generation_prompt it ends with the opening of an
// assistant turn for the model to complete. The text holds special tokens (<|eot_id|>, ...) as
// text: tokenize it with special-token parsing on. It never starts with BOS: see
// chat_template_adds_bos. Message content is trimmed of surrounding whitespace, as the official
// templates do. Throws std::invalid_argument naming the role when the template has no such role.
std::string apply_chat_template(ChatTemplate tmpl, const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt);

// Whether the tokenizer should put BOS before the prompt (all three formats begin with
// <|begin_of_text|> / the vocabulary's BOS in their reference implementations).
bool chat_template_adds_bos(ChatTemplate tmpl);

}  // namespace bitnet::model
