#pragma once
// OpenAI Images API: POST {base_url}/images/generations.
#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

HttpRequest build_openai_images(const GenerationRequest& req, const ProviderConfig& provider,
                                std::string_view api_key);
ParsedResponse parse_openai_images(const HttpResponse& response, const GenerationRequest& req);

}  // namespace imgbatch::daemon
