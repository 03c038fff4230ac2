// Chat templates: exact prompt text for single- and multi-turn conversations in each format (the
// expected strings are written out from the formats' definitions, not produced by the code), role
// errors, names, and detection from representative tokenizer.chat_template strings.
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenizer/chat-template.h"

namespace bitnet::model {
namespace {

const std::vector<ChatMessage> kSingle = {{"user", "Hello"}};
const std::vector<ChatMessage> kMulti = {{"system", "You are helpful."},
                                         {"user", "Hi"},
                                         {"assistant", "Hello! How can I help?"},
                                         {"user", "Tell me a joke."}};

TEST(ChatTemplate, BitNetSingleTurn) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::BitNet2B4T, kSingle, true),
            "User: Hello<|eot_id|>Assistant: ");
  EXPECT_EQ(apply_chat_template(ChatTemplate::BitNet2B4T, kSingle, false), "User: Hello<|eot_id|>");
}

TEST(ChatTemplate, BitNetMultiTurn) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::BitNet2B4T, kMulti, true),
            "System: You are helpful.<|eot_id|>"
            "User: Hi<|eot_id|>"
            "Assistant: Hello! How can I help?<|eot_id|>"
            "User: Tell me a joke.<|eot_id|>"
            "Assistant: ");
}

TEST(ChatTemplate, Llama3SingleTurn) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, kSingle, true),
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, kSingle, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>");
}

TEST(ChatTemplate, Llama3MultiTurn) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, kMulti, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, PlainSingleAndMultiTurn) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::Plain, kSingle, true), "User: Hello\nAssistant:");
  EXPECT_EQ(apply_chat_template(ChatTemplate::Plain, kMulti, false),
            "System: You are helpful.\n"
            "User: Hi\n"
            "Assistant: Hello! How can I help?\n"
            "User: Tell me a joke.\n");
}

TEST(ChatTemplate, ContentIsTrimmedLikeJinjaTrim) {
  const std::vector<ChatMessage> padded = {{"user", " \n\tHi there \r\n"}};
  EXPECT_EQ(apply_chat_template(ChatTemplate::BitNet2B4T, padded, true),
            "User: Hi there<|eot_id|>Assistant: ");
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, padded, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>");
  const std::vector<ChatMessage> blank = {{"user", "   "}};
  EXPECT_EQ(apply_chat_template(ChatTemplate::BitNet2B4T, blank, false), "User: <|eot_id|>");
}

TEST(ChatTemplate, EmptyConversationIsJustTheGenerationPrompt) {
  EXPECT_EQ(apply_chat_template(ChatTemplate::BitNet2B4T, {}, true), "Assistant: ");
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, {}, false), "");
}

TEST(ChatTemplate, UnknownRolesAreRejectedWhereTheFormatHasNoPlaceForThem) {
  const std::vector<ChatMessage> tool = {{"tool", "42"}};
  for (const auto t : {ChatTemplate::BitNet2B4T, ChatTemplate::Plain}) {
    try {
      apply_chat_template(t, tool, true);
      ADD_FAILURE() << chat_template_name(t);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'tool'"), std::string::npos) << e.what();
    }
  }
  // Llama 3 headers carry the role name (Llama 3.1 uses "ipython").
  EXPECT_EQ(apply_chat_template(ChatTemplate::Llama3, {{"ipython", "42"}}, false),
            "<|start_header_id|>ipython<|end_header_id|>\n\n42<|eot_id|>");
  EXPECT_THROW(apply_chat_template(ChatTemplate::Llama3, {{"", "x"}}, false),
               std::invalid_argument);
}

TEST(ChatTemplate, NamesRoundTrip) {
  for (const auto t : {ChatTemplate::BitNet2B4T, ChatTemplate::Llama3, ChatTemplate::Plain}) {
    const auto back = chat_template_from_name(chat_template_name(t));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, t);
  }
  EXPECT_STREQ(chat_template_name(ChatTemplate::BitNet2B4T), "bitnet-2b4t");
  EXPECT_STREQ(chat_template_name(ChatTemplate::Llama3), "llama3");
  EXPECT_STREQ(chat_template_name(ChatTemplate::Plain), "plain");
  EXPECT_FALSE(chat_template_from_name("chatml").has_value());
}

TEST(ChatTemplate, AllFormatsWantBos) {
  EXPECT_TRUE(chat_template_adds_bos(ChatTemplate::BitNet2B4T));
  EXPECT_TRUE(chat_template_adds_bos(ChatTemplate::Llama3));
  EXPECT_TRUE(chat_template_adds_bos(ChatTemplate::Plain));
}

// meta-llama/Meta-Llama-3-8B-Instruct's tokenizer.chat_template.
constexpr const char* kLlama3Jinja =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

// BitNet 2B4T-style templates: the role label built with `capitalize`, and written out.
constexpr const char* kBitNetJinjaCapitalize =
    "{% for message in messages %}{% set content = message['role'] | capitalize + ': ' + "
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "
    "bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant: ' }}{% endif %}";
constexpr const char* kBitNetJinjaLiteral =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ 'System: ' "
    "+ message['content'] + '<|eot_id|>' }}{% elif message['role'] == 'user' %}{{ 'User: ' + "
    "message['content'] + '<|eot_id|>' }}{% else %}{{ 'Assistant: ' + message['content'] + "
    "'<|eot_id|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}"
    "{% endif %}";

// ChatML (not supported): must fall through to the vocabulary rule.
constexpr const char* kChatMlJinja =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";

TEST(ChatTemplate, DetectFromJinja) {
  // The Jinja text wins over the vocabulary flags.
  for (const bool eot : {false, true}) {
    for (const bool header : {false, true}) {
      EXPECT_EQ(detect_chat_template(std::string(kLlama3Jinja), eot, header), ChatTemplate::Llama3);
      EXPECT_EQ(detect_chat_template(std::string(kBitNetJinjaCapitalize), eot, header),
                ChatTemplate::BitNet2B4T);
      EXPECT_EQ(detect_chat_template(std::string(kBitNetJinjaLiteral), eot, header),
                ChatTemplate::BitNet2B4T);
    }
  }
  // A bare name, as llama.cpp accepts.
  EXPECT_EQ(detect_chat_template(std::string("llama3"), true, true), ChatTemplate::Llama3);
  EXPECT_EQ(detect_chat_template(std::string("plain"), true, true), ChatTemplate::Plain);
}

TEST(ChatTemplate, DetectFallsBackToTheVocabulary) {
  for (const std::optional<std::string>& jinja :
       {std::optional<std::string>{}, std::optional<std::string>{""},
        std::optional<std::string>{kChatMlJinja}}) {
    EXPECT_EQ(detect_chat_template(jinja, true, true), ChatTemplate::BitNet2B4T);
    EXPECT_EQ(detect_chat_template(jinja, true, false), ChatTemplate::BitNet2B4T);
    EXPECT_EQ(detect_chat_template(jinja, false, true), ChatTemplate::Llama3);
    EXPECT_EQ(detect_chat_template(jinja, false, false), ChatTemplate::Plain);
  }
}

}  // namespace
}  // namespace bitnet::model
