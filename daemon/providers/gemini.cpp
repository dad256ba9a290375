#include "daemon/providers/gemini.hpp"

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <utility>

#include "daemon/image.hpp"
#include "daemon/providers/answer_json.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

// Fields of a generateContent request body beside contents and generationConfig.
constexpr std::array<std::string_view, 6> kRequestFields{
    "safetySettings", "systemInstruction", "tools", "toolConfig", "cachedContent", "labels"};

bool is_request_field(std::string_view key) {
    for (auto f : kRequestFields)
        if (f == key) return true;
    return false;
}

std::string string_field(const json::object& o, std::string_view key) {
    if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->get_string());
    return {};
}

void merge_into(json::object& target, const json::object& more) {
    for (const auto& [k, v] : more) target[k] = v;
}

}  // namespace

bool gemini_refusal_reason(std::string_view r) {
    static constexpr std::array<std::string_view, 8> kRefusals{
        "SAFETY", "PROHIBITED_CONTENT", "IMAGE_SAFETY",    "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
        "SPII",   "RECITATION",         "IMAGE_RECITATION"};
    for (auto k : kRefusals)
        if (k == r) return true;
    return false;
}

HttpRequest build_gemini(const GenerationRequest& req, const ProviderConfig& provider,
                         std::string_view api_key) {
    json::object body;
    json::object gc;
    json::object ic;
    gc["responseModalities"] = json::array{"TEXT", "IMAGE"};
    // Native fields first; the mapped job fields (validated against the catalog) win.
    for (const auto& [key, value] : req.params) {
        if (key == "aspect_ratio" || key == "image_size" || key == "contents") continue;
        if (is_request_field(key)) {
            body[key] = value;
        } else if (key == "generationConfig" && value.is_object()) {
            for (const auto& [gk, gv] : value.get_object()) {
                if (gk == "imageConfig" && gv.is_object())
                    merge_into(ic, gv.get_object());
                else
                    gc[gk] = gv;
            }
        } else if (key == "imageConfig" && value.is_object()) {
            merge_into(ic, value.get_object());
        } else {
            gc[key] = value;  // temperature, seed, topP, responseModalities, ...
        }
    }
    if (auto* v = req.params.if_contains("aspect_ratio")) ic["aspectRatio"] = *v;
    if (auto* v = req.params.if_contains("image_size")) ic["imageSize"] = *v;
    if (!ic.empty()) gc["imageConfig"] = std::move(ic);

    json::object user{{"role", "user"}, {"parts", json::array{json::object{{"text", req.prompt}}}}};
    body["contents"] = json::array{std::move(user)};
    body["generationConfig"] = std::move(gc);

    return google_style_request(provider, api_key, "/models/" + req.model + ":generateContent",
                                body);
}

namespace {

jobs::Error refusal(int status, std::string code, std::string message) {
    jobs::Error err;
    err.cls = jobs::ErrorClass::moderation;
    err.http_status = status;
    err.code = std::move(code);
    err.message = std::move(message);
    return err;
}

// The images of a 2xx answer's body; each image's base64 text is freed once decoded.
ParsedResponse read_answer(json::object& body, int status, ParsedResponse out,
                           AnswerJson* doc = nullptr) {
    if (auto* usage = body.if_contains("usageMetadata"); usage && usage->is_object())
        out.usage_json = json::serialize(*usage);

    std::string text;           // the text parts, joined
    std::string finish_reason;  // of the first candidate that gives one
    std::string finish_message;
    std::size_t index = 0;
    auto* candidates = body.if_contains("candidates");
    const bool any_candidate =
        candidates && candidates->is_array() && !candidates->get_array().empty();
    if (any_candidate) {
        for (auto& c : candidates->get_array()) {
            if (!c.is_object()) continue;
            auto& co = c.get_object();
            if (finish_reason.empty()) {
                finish_reason = valid_utf8(string_field(co, "finishReason"));
                finish_message = valid_utf8(string_field(co, "finishMessage"));
            }
            auto* content = co.if_contains("content");
            if (!content || !content->is_object()) continue;
            auto* parts = content->get_object().if_contains("parts");
            if (!parts || !parts->is_array()) continue;
            for (auto& p : parts->get_array()) {
                if (!p.is_object()) continue;
                auto& po = p.get_object();
                // Gemini 3 Pro shows drafts of its thinking: they are not the result.
                if (auto* t = po.if_contains("thought"); t && t->is_bool() && t->get_bool())
                    continue;
                if (auto* t = po.if_contains("text"); t && t->is_string()) {
                    if (!text.empty()) text += '\n';
                    text += valid_utf8(t->get_string());
                    continue;
                }
                json::value* inline_data = po.if_contains("inlineData");
                if (!inline_data) inline_data = po.if_contains("inline_data");
                if (!inline_data || !inline_data->is_object()) continue;
                auto& io = inline_data->get_object();
                auto* data = io.if_contains("data");
                if (!data || !data->is_string() || data->get_string().empty()) continue;
                auto bytes = take_base64_image(*data, doc, ++index, out);
                if (!bytes) continue;
                ImageItem item;
                item.bytes = std::move(*bytes);
                item.claimed_mime = valid_utf8(string_field(io, "mimeType"));
                if (item.claimed_mime.empty())
                    item.claimed_mime = valid_utf8(string_field(io, "mime_type"));
                out.images.push_back(std::move(item));
            }
        }
    }
    if (!out.images.empty()) {
        for (auto& image : out.images) image.revised_prompt = text;
        return out;
    }
    if (!out.item_error.empty()) {
        out.error = bad_response_error(status, "invalid_base64", out.item_error);
        return out;
    }
    auto with_text = [&](std::string message) {
        if (!finish_message.empty()) message += ": " + finish_message;
        if (!text.empty()) message += " (text: " + body_excerpt(text, 300) + ")";
        return message;
    };
    // The prompt itself was blocked: no candidates, promptFeedback says why.
    if (auto* fb = body.if_contains("promptFeedback"); fb && fb->is_object()) {
        std::string reason = valid_utf8(string_field(fb->get_object(), "blockReason"));
        if (!reason.empty() && reason != "BLOCK_REASON_UNSPECIFIED") {
            std::string message = "the prompt was blocked (blockReason " + reason + ")";
            if (auto m = string_field(fb->get_object(), "blockReasonMessage"); !m.empty())
                message += ": " + valid_utf8(m);
            out.error = refusal(status, reason, std::move(message));
            return out;
        }
    }
    if (gemini_refusal_reason(finish_reason)) {
        out.error = refusal(status, finish_reason,
                            with_text("the provider refused to generate the image (finishReason " +
                                      finish_reason + ")"));
        return out;
    }
    if (!any_candidate) {
        out.error = bad_response_error(
            status, "no_candidates",
            "no candidates in the answer: " + body_excerpt(json::serialize(body), 200));
        return out;
    }
    out.error = bad_response_error(
        status, "no_image",
        with_text("no image in the answer (finishReason " +
                  (finish_reason.empty() ? std::string("none") : finish_reason) + ")"));
    return out;
}

}  // namespace

ParsedResponse parse_gemini(const HttpResponse& response, const GenerationRequest&) {
    ParsedResponse out;
    json::value storage;
    if (!success_body(response, storage, out, ErrorObject::reject)) return out;
    return read_answer(storage.get_object(), response.status, std::move(out));
}

ParsedResponse parse_gemini_owned(HttpResponse&& response, const GenerationRequest&) {
    ParsedResponse out;
    AnswerJson doc;
    json::object* body = success_body_owned(response, doc, out, ErrorObject::reject, {"data"});
    if (!body) return out;
    return read_answer(*body, response.status, std::move(out), &doc);
}

}  // namespace imgbatch::daemon
