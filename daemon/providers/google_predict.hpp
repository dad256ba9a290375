#pragma once
// Google Imagen predict API: POST {base_url}/models/{model}:predict.
#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

HttpRequest build_google_predict(const GenerationRequest& req, const ProviderConfig& provider,
                                 std::string_view api_key);
ParsedResponse parse_google_predict(const HttpResponse& response, const GenerationRequest& req);
// The same, freeing the answer's text once parsed and each image's base64 once decoded.
ParsedResponse parse_google_predict_owned(HttpResponse&& response, const GenerationRequest& req);

}  // namespace imgbatch::daemon
