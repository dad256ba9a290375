#pragma once
// Chat-completions relays that answer with images in the message:
// POST {base_url}/chat/completions.
#include <boost/json/object.hpp>
#include <string_view>
#include <vector>

#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

HttpRequest build_openai_chat(const GenerationRequest& req, const ProviderConfig& provider,
                              std::string_view api_key);
ParsedResponse parse_openai_chat(const HttpResponse& response, const GenerationRequest& req);

// The images of a chat-completion answer's body (choices[0].message): content parts and
// message.images, then find_message_images of the text; without an image, a refusal
// (moderation) or bad_response. answer_text: the answer as received, for messages (empty:
// the body is quoted). Also reads the images endpoint's chat-shaped answers (relays).
ParsedResponse read_chat_answer(const boost::json::object& body, int status,
                                std::string_view answer_text, ParsedResponse out = {});

// The image references in a message text, in order, without duplicates: the targets of
// markdown images ![alt](target) that are http(s) URLs or data:image URIs, and bare
// data:image/...;base64,... URIs. Plain links and bare URLs are not images.
std::vector<std::string> find_message_images(std::string_view text);

}  // namespace imgbatch::daemon
