#include "daemon/providers/openai_images.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/image.hpp"
#include "daemon/providers/answer_json.hpp"
#include "daemon/providers/openai_chat.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

bool is_dall_e(std::string_view model) {
    return model.starts_with("dall-e");
}

bool is_http_url(std::string_view s) {
    return s.starts_with("http://") || s.starts_with("https://");
}

// One entry of data[]: an Image object, or (some relays) a bare string, URL or base64.
// Returns false when the entry holds image data that cannot be decoded. The entry's base64
// text is freed once decoded: the answer is not held twice.
bool read_item(json::value& v, std::string_view claimed_mime, std::vector<ImageItem>& out,
               AnswerJson* doc) {
    // A large b64_json that parse_answer_json decoded already.
    if (doc && v.is_object()) {
        if (auto* p = v.get_object().if_contains("b64_json")) {
            if (auto* blob = doc->blob(*p)) {
                if (!*blob) return false;
                ImageItem item;
                item.bytes = std::move(**blob);
                blob->reset();
                item.claimed_mime = std::string(claimed_mime);
                if (auto* r = v.get_object().if_contains("revised_prompt"); r && r->is_string())
                    item.revised_prompt = valid_utf8(r->get_string());
                out.push_back(std::move(item));
                return true;
            }
        }
    }
    std::string_view b64, url, revised;
    if (v.is_string()) {
        std::string_view s = v.get_string();
        (is_http_url(s) || s.starts_with("data:") ? url : b64) = s;
    } else if (v.is_object()) {
        const auto& o = v.get_object();
        if (auto* p = o.if_contains("b64_json"); p && p->is_string()) b64 = p->get_string();
        if (auto* p = o.if_contains("url"); p && p->is_string()) url = p->get_string();
        if (auto* p = o.if_contains("revised_prompt"); p && p->is_string())
            revised = p->get_string();
    }
    ImageItem item;
    item.revised_prompt = valid_utf8(revised);
    if (!b64.empty()) {
        auto bytes = base64_decode(b64);
        if (!bytes) return false;
        item.bytes = std::move(*bytes);
        item.claimed_mime = std::string(claimed_mime);
        if (v.is_string())
            v = nullptr;
        else
            v.get_object()["b64_json"] = nullptr;
    } else if (url.starts_with("data:")) {
        auto decoded = decode_data_uri(url);
        if (!decoded) return false;
        item = std::move(*decoded);
    } else if (is_http_url(url)) {
        item.url = std::string(url);
    } else {
        return true;  // nothing usable in this entry: it counts as a missing image
    }
    out.push_back(std::move(item));
    return true;
}

std::string mime_of_format(std::string_view format) {
    if (format == "png" || format == "jpeg" || format == "webp")
        return "image/" + std::string(format);
    if (format == "jpg") return "image/jpeg";
    return {};
}

}  // namespace

HttpRequest build_openai_images(const GenerationRequest& req, const ProviderConfig& provider,
                                std::string_view api_key) {
    json::object body;
    body["model"] = req.model;
    body["prompt"] = req.prompt;
    body["n"] = req.n;
    for (const auto& [key, value] : req.params) {
        if (key == "model" || key == "prompt" || key == "n") continue;
        body[key] = value;
    }
    // DALL-E answers with URLs by default; ask for the bytes. GPT image models reject the field
    // (they always answer with b64_json), so it is dropped even when a job sets it.
    if (is_dall_e(req.model) && !body.contains("response_format"))
        body["response_format"] = "b64_json";
    if (req.model.starts_with("gpt-image")) body.erase("response_format");

    HttpRequest http;
    http.url = join_url(provider.base_url, "/images/generations");
    http.headers = json_request_headers(provider, "Authorization",
                                        api_key.empty() ? "" : "Bearer " + std::string(api_key));
    http.body = json::serialize(body);
    return http;
}

namespace {

// The images of a 2xx answer's body. text: the answer's text for messages (empty once freed).
ParsedResponse read_answer(json::object& body, int status, std::string_view text,
                           const GenerationRequest& req, ParsedResponse out,
                           AnswerJson* doc = nullptr) {
    if (auto* usage = body.if_contains("usage"); usage && usage->is_object())
        out.usage_json = json::serialize(*usage);

    auto* data = body.if_contains("data");
    if (!data || !data->is_array()) {
        if (auto err = error_in_success_body(body, status)) {
            out.error = std::move(err);
        } else if (body.contains("choices")) {
            // Relays (seeds 000, 004) answer the images endpoint in the chat-completion shape,
            // whatever the model: images linked or inline in choices[0].message.
            return read_chat_answer(body, status, text, std::move(out), doc);
        } else {
            out.error = bad_response_error(
                status, "no_data",
                "no data array in the answer: " +
                    body_excerpt(text.empty() ? json::serialize(body) : std::string(text), 200));
        }
        return out;
    }
    std::string claimed;
    if (auto* f = body.if_contains("output_format"); f && f->is_string())
        claimed = mime_of_format(f->get_string());
    std::size_t index = 0;
    for (auto& item : data->get_array()) {
        ++index;
        // One entry that cannot be decoded does not throw away the others (they are paid for).
        if (!read_item(item, claimed, out.images, doc) && out.item_error.empty())
            out.item_error = "image " + std::to_string(index) + ": invalid base64";
    }
    if (auto err = drop_invalid_urls(out.images, status)) {
        out.error = std::move(err);
        return out;
    }
    if (out.images.empty() && !out.item_error.empty())
        out.error = bad_response_error(status, "invalid_base64", out.item_error);
    else if (out.images.empty() && req.n > 0)
        out.error = bad_response_error(status, "no_images", "no images in the answer");
    return out;
}

}  // namespace

ParsedResponse parse_openai_images(const HttpResponse& response, const GenerationRequest& req) {
    ParsedResponse out;
    json::value storage;
    if (!success_body(response, storage, out, ErrorObject::keep)) return out;
    return read_answer(storage.get_object(), response.status, response.body, req, std::move(out));
}

ParsedResponse parse_openai_images_owned(HttpResponse&& response, const GenerationRequest& req) {
    ParsedResponse out;
    AnswerJson doc;
    // A relay's chat-shaped answer holds its images as data URIs in the message text.
    json::object* body =
        success_body_owned(response, doc, out, ErrorObject::keep, {"b64_json"}, kChatUriKeys);
    if (!body) return out;
    return read_answer(*body, response.status, {}, req, std::move(out), &doc);
}

}  // namespace imgbatch::daemon
