#include "daemon/providers/google_predict.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <utility>

#include "daemon/image.hpp"
#include "daemon/providers/answer_json.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

constexpr std::string_view kAllFiltered =
    "all images were filtered by the provider's safety filters";

std::string string_field(const json::object& o, std::string_view key) {
    if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->get_string());
    return {};
}

}  // namespace

HttpRequest build_google_predict(const GenerationRequest& req, const ProviderConfig& provider,
                                 std::string_view api_key) {
    json::object parameters;
    parameters["sampleCount"] = req.n;
    const std::string size_key =
        provider.image_size_key.empty() ? "sampleImageSize" : provider.image_size_key;
    for (const auto& [key, value] : req.params) {
        if (key == "aspect_ratio")
            parameters["aspectRatio"] = value;
        else if (key == "image_size")
            parameters[size_key] = value;
        else if (key == "person_generation")
            parameters["personGeneration"] = value;
        else if (key != "sampleCount")
            parameters[key] = value;  // native fields: negativePrompt, seed, addWatermark, ...
    }
    json::object instance;
    instance["prompt"] = req.prompt;
    json::object body;
    body["instances"] = json::array{std::move(instance)};
    body["parameters"] = std::move(parameters);

    return google_style_request(provider, api_key, "/models/" + req.model + ":predict", body);
}

namespace {

// The images of a 2xx answer's body; each image's base64 text is freed once decoded.
ParsedResponse read_answer(json::object& body, int status, ParsedResponse out,
                           AnswerJson* doc = nullptr) {
    if (auto* usage = body.if_contains("usageMetadata"); usage && usage->is_object())
        out.usage_json = json::serialize(*usage);

    if (auto* preds = body.if_contains("predictions"); preds && preds->is_array()) {
        std::size_t index = 0;
        for (auto& p : preds->get_array()) {
            if (!p.is_object()) continue;
            auto& o = p.get_object();
            auto* b64 = o.if_contains("bytesBase64Encoded");
            if (!b64 || !b64->is_string() || b64->get_string().empty()) {
                // Items without bytes: RAI-filtered images, or safety attributes of the prompt.
                if (auto reason = string_field(o, "raiFilteredReason"); !reason.empty()) {
                    ++out.filtered;
                    if (out.filtered_reason.empty()) out.filtered_reason = valid_utf8(reason);
                }
                continue;
            }
            // One entry that cannot be decoded does not throw away the others.
            auto bytes = take_base64_image(*b64, doc, ++index, out);
            if (!bytes) continue;
            ImageItem item;
            item.bytes = std::move(*bytes);
            item.claimed_mime = valid_utf8(string_field(o, "mimeType"));
            item.revised_prompt =
                valid_utf8(string_field(o, "prompt"));  // Imagen's enhanced prompt
            out.images.push_back(std::move(item));
        }
    }
    if (out.images.empty() && !out.item_error.empty()) {
        out.error = bad_response_error(status, "invalid_base64", out.item_error);
        return out;
    }
    // Imagen answers {} (no predictions) when it filtered every image.
    if (out.images.empty()) {
        jobs::Error err;
        err.cls = jobs::ErrorClass::moderation;
        err.code = "rai_filtered";
        err.http_status = status;
        err.message = out.filtered_reason.empty() ? std::string(kAllFiltered) : out.filtered_reason;
        out.error = std::move(err);
    }
    return out;
}

}  // namespace

ParsedResponse parse_google_predict(const HttpResponse& response, const GenerationRequest&) {
    ParsedResponse out;
    json::value storage;
    if (!success_body(response, storage, out, ErrorObject::reject)) return out;
    return read_answer(storage.get_object(), response.status, std::move(out));
}

ParsedResponse parse_google_predict_owned(HttpResponse&& response, const GenerationRequest&) {
    ParsedResponse out;
    AnswerJson doc;
    json::object* body =
        success_body_owned(response, doc, out, ErrorObject::reject, {"bytesBase64Encoded"});
    if (!body) return out;
    return read_answer(*body, response.status, std::move(out), &doc);
}

}  // namespace imgbatch::daemon
