#pragma once
// OpenAI Images API: POST {base_url}/images/generations.
#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

HttpRequest build_openai_images(const GenerationRequest& req, const ProviderConfig& provider,
                                std::string_view api_key);
ParsedResponse parse_openai_images(const HttpResponse& response, const GenerationRequest& req);
// The same, freeing the answer's text as soon as it is parsed and each image's base64 text as
// soon as it is decoded: about one copy of the answer in memory at a time.
ParsedResponse parse_openai_images_owned(HttpResponse&& response, const GenerationRequest& req);

}  // namespace imgbatch::daemon
