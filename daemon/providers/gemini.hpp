#pragma once
// Gemini image models (generateContent): POST {base_url}/models/{model}:generateContent, one
// image per call. base_url is https://generativelanguage.googleapis.com/v1beta for the Gemini
// API, or .../v1/projects/{project}/locations/{location}/publishers/google for Vertex AI.
//
// Request: the prompt as the user's text part, generationConfig.responseModalities
// ["TEXT","IMAGE"]; params: aspect_ratio -> generationConfig.imageConfig.aspectRatio,
// image_size -> imageConfig.imageSize; the request-level fields of generateContent
// (safetySettings, systemInstruction, tools, toolConfig, cachedContent, labels) go to the top
// of the body; a "generationConfig" or "imageConfig" object is merged into that object; every
// other param is a generationConfig field (temperature, seed, responseModalities, ...).
//
// Answer: images from candidates[].content.parts[].inlineData (thought parts skipped), the
// text parts joined as the revised prompt, usageMetadata as usage. No image: a
// promptFeedback.blockReason, or a finishReason that is a refusal (SAFETY, PROHIBITED_CONTENT,
// IMAGE_SAFETY, ...), is moderation with that reason as code; any other finishReason (STOP
// with text only, NO_IMAGE, ...) is bad_response "no_image".
#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

HttpRequest build_gemini(const GenerationRequest& req, const ProviderConfig& provider,
                         std::string_view api_key);
ParsedResponse parse_gemini(const HttpResponse& response, const GenerationRequest& req);
// The same, freeing the answer's text once parsed and each image's base64 once decoded.
ParsedResponse parse_gemini_owned(HttpResponse&& response, const GenerationRequest& req);

// Whether a candidate's finishReason means the provider refused to produce the output.
bool gemini_refusal_reason(std::string_view finish_reason);

}  // namespace imgbatch::daemon
