#include "daemon/providers/openai_images.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/image.hpp"

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
// Returns false when the entry holds image data that cannot be decoded.
bool read_item(const json::value& v, std::string_view claimed_mime, std::vector<ImageItem>& out) {
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
    if (!b64.empty()) {
        auto bytes = base64_decode(b64);
        if (!bytes) return false;
        item.bytes = std::move(*bytes);
        item.claimed_mime = std::string(claimed_mime);
    } else if (url.starts_with("data:")) {
        auto decoded = decode_data_uri(url);
        if (!decoded) return false;
        item = std::move(*decoded);
    } else if (is_http_url(url)) {
        item.url = std::string(url);
    } else {
        return true;  // nothing usable in this entry: it counts as a missing image
    }
    item.revised_prompt = std::string(revised);
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

ParsedResponse parse_openai_images(const HttpResponse& response, const GenerationRequest& req) {
    ParsedResponse out;
    json::value storage;
    const json::object* parsed = success_body(response, storage, out, ErrorObject::keep);
    if (!parsed) return out;
    const auto& body = *parsed;
    if (auto* usage = body.if_contains("usage"); usage && usage->is_object())
        out.usage_json = json::serialize(*usage);

    auto* data = body.if_contains("data");
    if (!data || !data->is_array()) {
        if (auto err = error_in_success_body(body, response.status)) {
            out.error = std::move(err);
        } else {
            out.error = bad_response_error(
                response.status, "no_data",
                "no data array in the answer: " + body_excerpt(response.body, 200));
        }
        return out;
    }
    std::string claimed;
    if (auto* f = body.if_contains("output_format"); f && f->is_string())
        claimed = mime_of_format(f->get_string());
    std::size_t index = 0;
    for (const auto& item : data->get_array()) {
        ++index;
        if (!read_item(item, claimed, out.images)) {
            out.images.clear();
            out.error = bad_response_error(response.status, "invalid_base64",
                                           "image " + std::to_string(index) + ": invalid base64");
            return out;
        }
    }
    if (auto err = drop_invalid_urls(out.images, response.status)) {
        out.error = std::move(err);
        return out;
    }
    if (out.images.empty() && req.n > 0)
        out.error = bad_response_error(response.status, "no_images", "no images in the answer");
    return out;
}

}  // namespace imgbatch::daemon
