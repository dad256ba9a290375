#pragma once
// Chat-completions relays that answer with images in the message:
// POST {base_url}/chat/completions.
#include <boost/json/object.hpp>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

HttpRequest build_openai_chat(const GenerationRequest& req, const ProviderConfig& provider,
                              std::string_view api_key);
ParsedResponse parse_openai_chat(const HttpResponse& response, const GenerationRequest& req);
// The same for a taken answer, read with about one copy of it in memory: the data URIs of a
// large message are decoded while the answer is parsed (parse_answer_json's uri keys).
ParsedResponse parse_openai_chat_owned(HttpResponse&& response, const GenerationRequest& req);

// The keys whose string values may hold data URIs in a chat-shaped answer.
inline const std::initializer_list<std::string_view> kChatUriKeys = {"content", "text", "url",
                                                                     "image_url"};

struct AnswerJson;

// The images of a chat-completion answer's body (choices[0].message): content parts and
// message.images, then find_message_images of the text; without an image, a refusal
// (moderation) or bad_response. answer_text: the answer as received, for messages (empty:
// the body is quoted). Also reads the images endpoint's chat-shaped answers (relays).
ParsedResponse read_chat_answer(const boost::json::object& body, int status,
                                std::string_view answer_text, ParsedResponse out = {},
                                AnswerJson* doc = nullptr);

// The image references in a message text, in order, without duplicates: the targets of
// markdown images ![alt](target) that are http(s) URLs or data:image URIs, and bare
// data:image/...;base64,... URIs. Plain links and bare URLs are not images. With a placeholder
// marker (AnswerJson::marker), "data:image/<type>;base64,<marker><n>" is a URI too (its data
// was decoded while the answer was parsed).
std::vector<std::string> find_message_images(std::string_view text, std::string_view marker = {});

}  // namespace imgbatch::daemon
