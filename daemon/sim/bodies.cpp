// Simulator answers in the shape of each API: images, errors and the faults of #fail=KIND.
#include <boost/json.hpp>
#include <chrono>

#include "daemon/image.hpp"
#include "daemon/net/content_coding.hpp"
#include "daemon/sim/state.hpp"

namespace imgbatch::daemon {
namespace {

namespace json = boost::json;

constexpr std::string_view kBadBase64 = "!!!not-base64!!!";
constexpr std::string_view kNotImage = "hello, this is not an image";
constexpr std::string_view kRaiReason =
    "Your current safety filter threshold filtered out 1 generated images. You will not be "
    "charged for blocked images. Try rephrasing the prompt.";

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

SimAnswer body_answer(int status, std::string_view content_type, std::string body) {
    SimAnswer a;
    a.status = status;
    a.headers = {{"Content-Type", std::string(content_type)}};
    a.body = std::move(body);
    return a;
}

std::int64_t prompt_tokens(const std::string& prompt) {
    return static_cast<std::int64_t>(prompt.size() / 4 + 1);
}

}  // namespace

const SimState::Picture& SimState::picture(Bytes bytes) {
    if (bytes == Bytes::notimage) {
        if (not_image_.bytes.empty())
            not_image_ = {std::string(kNotImage), base64_encode(kNotImage)};
        return not_image_;
    }
    if (pictures_.empty()) pictures_.resize(kImagePool);
    const std::size_t slot = next_picture_++ % kImagePool;
    Picture& p = pictures_[slot];
    if (p.bytes.empty()) {  // a different picture per slot, reproducible from the seed
        auto seed = static_cast<unsigned>(options_.seed * 2654435761u + slot * 40503u + 1);
        p.bytes = make_png(options_.image_size, options_.image_size, seed);
        p.bytes.resize(p.bytes.size() - 12);  // without IEND: the prompt's chunk comes first
        // Pad with a text chunk to a multiple of 3 bytes, where base64 texts can be joined.
        if (p.bytes.size() % 3 != 0) {
            std::string text("Software\0imgbatch sim", 21);
            while ((p.bytes.size() + 12 + text.size()) % 3 != 0) text += ' ';
            p.bytes += png_chunk("tEXt", text);
        }
        p.base64 = base64_encode(p.bytes);
    }
    return p;
}

namespace {

// The end of a sim PNG: the prompt and IEND.
std::string tagged_tail(const std::string& prompt) {
    static const std::string iend = png_chunk("IEND", "");
    return png_itxt_chunk("prompt", prompt) + iend;
}

}  // namespace

std::string SimState::tagged_png(const std::string& prompt) {
    return picture(Bytes::png).bytes + tagged_tail(prompt);
}

std::string SimState::tagged_base64(const std::string& prompt) {
    return picture(Bytes::png).base64 + base64_encode(tagged_tail(prompt));
}

SimAnswer SimState::images(const Call& call, int good, int filtered, Bytes bytes) {
    // One image as a URL to /sim/files, or as base64 text.
    int index = 0;
    auto encoded = [&](bool as_url) -> std::pair<std::string, bool> {
        const bool bad = bytes == Bytes::badbase64 || (bytes == Bytes::badone && index == 0);
        ++index;
        if (bad) return {std::string(kBadBase64), false};
        if (bytes == Bytes::notimage) {
            const Picture& p = picture(bytes);
            if (as_url) return {call.base + "/sim/files/" + store_file(p.bytes) + ".png", true};
            return {p.base64, false};
        }
        if (as_url)
            return {call.base + "/sim/files/" + store_file(tagged_png(call.prompt)) + ".png", true};
        return {tagged_base64(call.prompt), false};
    };
    const std::int64_t in = prompt_tokens(call.prompt);
    const std::int64_t out = 272 * static_cast<std::int64_t>(good);
    json::object o;
    if (call.chatshape) {
        // The images endpoint of a relay answering like chat completions (seeds 000, 004):
        // each image a markdown image (a served file with a plain download link after it, or
        // with #datauri an inline data URI) in choices[0].message.content.
        std::string content = good > 0
                                  ? "\xe5\x9b\xbe\xe7\x89\x87\xe5\xb7\xb2\xe7\x94\x9f\xe6\x88\x90"
                                    " (images generated):"  // 图片已生成
                                  : "I could not create an image for this request.";
        for (int i = 0; i < good; ++i) {
            if (call.datauri || bytes == Bytes::badbase64 || bytes == Bytes::badone) {
                content += "\n![image " + std::to_string(i + 1) + "](data:image/png;base64," +
                           encoded(false).first + ")";
            } else {
                std::string url = encoded(true).first;
                content += "\n![image " + std::to_string(i + 1) + "](" + url + ")\n[Download](" +
                           url + ")";
            }
        }
        o["id"] = "chatcmpl-sim-" + std::to_string(next_id_++);
        o["object"] = "chat.completion";
        o["created"] = unix_now();
        json::object message{{"role", "assistant"}, {"content", content}};
        o["choices"] = json::array{
            json::object{{"index", 0}, {"message", std::move(message)}, {"finish_reason", "stop"}}};
        o["usage"] = {
            {"prompt_tokens", in}, {"completion_tokens", out}, {"total_tokens", in + out}};
    } else if (call.api == SimApi::openai) {
        json::array data;
        for (int i = 0; i < good; ++i) {
            auto [text, is_url] = encoded(call.url);
            json::object item;
            item[is_url ? "url" : "b64_json"] = text;
            item["revised_prompt"] = call.prompt + " (revised)";
            data.push_back(std::move(item));
        }
        o["created"] = unix_now();
        o["data"] = std::move(data);
        o["usage"] = {{"total_tokens", in + out},
                      {"input_tokens", in},
                      {"output_tokens", out},
                      {"input_tokens_details", {{"text_tokens", in}, {"image_tokens", 0}}}};
    } else if (call.api == SimApi::google) {
        json::array predictions;
        for (int i = 0; i < good; ++i)
            predictions.push_back(json::object{{"bytesBase64Encoded", encoded(false).first},
                                               {"mimeType", "image/png"}});
        for (int i = 0; i < filtered; ++i)
            predictions.push_back(json::object{{"raiFilteredReason", kRaiReason}});
        o["predictions"] = std::move(predictions);
    } else if (call.api == SimApi::gemini) {
        if (good == 0) return gemini_no_image(call, filtered > 0 ? "IMAGE_SAFETY" : "STOP", "");
        const std::string text = "Here is your image: " + call.prompt;
        json::array parts{json::object{{"text", text}}};
        for (int i = 0; i < good; ++i)
            parts.push_back(
                json::object{{"inlineData", json::object{{"mimeType", "image/png"},
                                                         {"data", encoded(false).first}}}});
        // Gemini counts the text part's tokens beside the images' (both are output).
        const std::int64_t text_tokens = prompt_tokens(text);
        const std::int64_t image_tokens = 1290 * static_cast<std::int64_t>(good);
        o["candidates"] = json::array{
            json::object{{"content", json::object{{"parts", std::move(parts)}, {"role", "model"}}},
                         {"finishReason", "STOP"},
                         {"index", 0}}};
        o["usageMetadata"] = {
            {"promptTokenCount", in},
            {"candidatesTokenCount", text_tokens + image_tokens},
            {"totalTokenCount", in + text_tokens + image_tokens},
            {"promptTokensDetails", json::array{{{"modality", "TEXT"}, {"tokenCount", in}}}},
            {"candidatesTokensDetails",
             json::array{{{"modality", "TEXT"}, {"tokenCount", text_tokens}},
                         {{"modality", "IMAGE"}, {"tokenCount", image_tokens}}}}};
        o["modelVersion"] = call.model;
        o["responseId"] = "sim-" + std::to_string(next_id_++);
    } else {
        std::string content = "I could not create an image for this request.";
        if (good > 0) {
            if (call.datauri || bytes == Bytes::badbase64 || bytes == Bytes::badone) {
                content = "Here is your image: ![img](data:image/png;base64," +
                          encoded(false).first + ")";
            } else {
                std::string url = encoded(true).first;
                content = "Here is your image: ![image](" + url + ")\n[Download](" + url + ")";
            }
        }
        o["id"] = "chatcmpl-sim-" + std::to_string(next_id_++);
        o["object"] = "chat.completion";
        o["created"] = unix_now();
        o["model"] = call.model;
        json::object message{{"role", "assistant"}, {"content", content}};
        o["choices"] = json::array{
            json::object{{"index", 0}, {"message", std::move(message)}, {"finish_reason", "stop"}}};
        o["usage"] = {
            {"prompt_tokens", in}, {"completion_tokens", out}, {"total_tokens", in + out}};
    }
    SimAnswer a = body_answer(200, "application/json", json::serialize(o));
    a.images = bytes == Bytes::png ? good : bytes == Bytes::badone ? std::max(0, good - 1) : 0;
    return a;
}

SimAnswer SimState::gemini_no_image(const Call& call, std::string_view finish_reason,
                                    std::string_view block_reason) {
    const std::int64_t in = prompt_tokens(call.prompt);
    json::object o;
    if (!block_reason.empty()) {
        o["promptFeedback"] = {{"blockReason", block_reason}};
    } else {
        json::object candidate;
        if (finish_reason == "STOP") {
            candidate["content"] = {
                {"parts", json::array{{{"text", "I can describe it, but here is no picture: " +
                                                    call.prompt}}}},
                {"role", "model"}};
        } else {
            candidate["finishMessage"] =
                "Unable to show the generated image. The image was filtered out because it "
                "violated Google's Generative AI Prohibited Use policy. You will not be charged "
                "for blocked images. Try rephrasing the prompt.";
        }
        candidate["finishReason"] = finish_reason;
        candidate["index"] = 0;
        o["candidates"] = json::array{std::move(candidate)};
    }
    o["usageMetadata"] = {
        {"promptTokenCount", in},
        {"totalTokenCount", in},
        {"promptTokensDetails", json::array{{{"modality", "TEXT"}, {"tokenCount", in}}}}};
    o["modelVersion"] = call.model;
    o["responseId"] = "sim-" + std::to_string(next_id_++);
    return body_answer(200, "application/json", json::serialize(o));
}

SimAnswer SimState::error(SimApi api, int status, std::string_view type, std::string_view code,
                          std::string_view message, std::string_view google_status) {
    json::object e;
    if (api == SimApi::google || api == SimApi::gemini) {
        e = {{"code", status}, {"message", message}, {"status", google_status}};
    } else {
        e["message"] = message;
        e["type"] = type;
        e["param"] = nullptr;
        if (code.empty())
            e["code"] = nullptr;
        else
            e["code"] = code;
    }
    return body_answer(status, "application/json", json::serialize(json::object{{"error", e}}));
}

SimAnswer SimState::fault(const Call& call, std::string_view kind) {
    const SimApi api = call.api;
    const bool google = api == SimApi::google || api == SimApi::gemini;
    if (api == SimApi::gemini) {
        // generateContent refusals: #fail=finish:REASON, #fail=blocked:REASON, #fail=textonly.
        if (kind.starts_with("finish:") && kind.size() > 7)
            return gemini_no_image(call, kind.substr(7), "");
        if (kind.starts_with("blocked:") && kind.size() > 8)
            return gemini_no_image(call, "", kind.substr(8));
        if (kind == "textonly") return gemini_no_image(call, "STOP", "");
    }
    if (kind == "429" || kind == "429ms") {
        SimAnswer a = error(api, 429, "requests", "rate_limit_exceeded",
                            "Rate limit reached for requests", "RESOURCE_EXHAUSTED");
        if (kind == "429")
            a.headers.emplace_back("Retry-After", "1");
        else
            a.headers.emplace_back("retry-after-ms", "300");
        return a;
    }
    if (kind == "429text") {
        SimAnswer a = body_answer(429, "text/plain", "Too Many Requests");
        a.headers.emplace_back("Retry-After", "1");
        return a;
    }
    if (kind == "500")
        return error(api, 500, "server_error", "server_error",
                     "The server had an error while processing your request.", "INTERNAL");
    if (kind == "502html")
        return body_answer(502, "text/html",
                           "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                           "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx"
                           "</center>\r\n</body>\r\n</html>\r\n");
    if (kind == "504")
        return body_answer(504, "text/html",
                           "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>"
                           "\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>"
                           "nginx</center>\r\n</body>\r\n</html>\r\n");
    if (kind == "524")
        return body_answer(524, "text/html",
                           "<!DOCTYPE html><html><head><title>A timeout occurred | Cloudflare"
                           "</title></head><body><h1>A timeout occurred</h1><p>Error code 524"
                           "</p></body></html>");
    if (kind == "503") {
        SimAnswer a = error(api, 503, "server_error", "service_unavailable",
                            "The server is overloaded or not ready yet.", "UNAVAILABLE");
        a.headers.emplace_back("Retry-After", "1");
        return a;
    }
    if (kind == "timeout" || kind == "reset") {
        SimAnswer a;
        a.action = kind == "reset" ? SimAnswer::Action::reset : SimAnswer::Action::hold;
        return a;
    }
    if (kind == "truncated") {
        SimAnswer a = images(call, call.n, 0, Bytes::png);
        a.action = SimAnswer::Action::truncate;
        return a;
    }
    if (kind == "moderation") {
        if (google) return images(call, 0, call.n, Bytes::png);
        return error(api, 400, "image_generation_user_error", "moderation_blocked",
                     "Your request was rejected by the safety system.", "");
    }
    if (kind == "partial")
        return images(call, call.n / 2, google ? call.n - call.n / 2 : 0, Bytes::png);
    if (kind == "badjson") return body_answer(200, "application/json", R"({"data": [ not json)");
    if (kind == "badbase64") return images(call, call.n, 0, Bytes::badbase64);
    if (kind == "notimage") return images(call, call.n, 0, Bytes::notimage);
    if (kind == "invalid")
        return error(api, 400, "invalid_request_error", "invalid_value",
                     "Invalid value for 'size': supported values are '1024x1024', '1024x1536', "
                     "'1536x1024' and 'auto'.",
                     "INVALID_ARGUMENT");
    if (kind == "nomodel" || kind == "modelgone") {
        // Google says the same for a model that never was and for one shut down.
        if (google)
            return error(api, 404, "", "",
                         "models/" + call.model + " is not found for API version v1beta, or is " +
                             "not supported for " +
                             (api == SimApi::gemini ? "generateContent" : "predict") +
                             ". Call ListModels to see the list of available models and their "
                             "supported methods.",
                         "NOT_FOUND");
        return error(api, 404, "invalid_request_error", "model_not_found",
                     kind == "nomodel" ? "The model `" + call.model +
                                             "` does not exist or you do not have access to it."
                                       : "The model `" + call.model +
                                             "` has been deprecated, learn more here: "
                                             "https://platform.openai.com/docs/deprecations",
                     "");
    }
    if (kind == "relaynomodel")  // a new-api relay without a channel for the model
        return body_answer(
            503, "application/json",
            json::serialize(json::object{
                {"error", json::object{{"message", "No available channel for model " + call.model +
                                                       " under group default"},
                                       {"type", "new_api_error"},
                                       {"param", ""},
                                       {"code", "model_not_found"}}}}));
    if (kind == "auth")
        return error(api, 401, "invalid_request_error", "invalid_api_key",
                     "Incorrect API key provided.", "UNAUTHENTICATED");
    if (kind == "quota")
        return error(api, 429, "insufficient_quota", "insufficient_quota",
                     "You exceeded your current quota, please check your plan and billing details.",
                     "RESOURCE_EXHAUSTED");
    if (kind == "empty") return images(call, 0, 0, Bytes::png);
    if (kind == "badb64one") return images(call, call.n, 0, Bytes::badone);
    if (kind == "interim") {
        SimAnswer a = images(call, call.n, 0, Bytes::png);
        a.interim =
            "HTTP/1.1 100 Continue\r\n\r\n"
            "HTTP/1.1 103 Early Hints\r\nLink: </sim/hint.css>; rel=preload; as=style\r\n\r\n";
        return a;
    }
    if (kind == "stale") {
        SimAnswer a = images(call, call.n, 0, Bytes::png);
        a.close_after = true;
        return a;
    }
    if (kind == "close") {
        SimAnswer a;
        a.action = SimAnswer::Action::close;
        return a;
    }
    if (kind == "gzip") {
        SimAnswer a = images(call, call.n, 0, Bytes::png);
        a.body = gzip_compress(a.body);
        a.headers.emplace_back("Content-Encoding", "gzip");
        return a;
    }
    if (kind == "latin1") {
        // An nginx error page in ISO-8859-1 (the bytes E9 and E0 are not UTF-8).
        SimAnswer a = body_answer(
            502, "text/html; charset=iso-8859-1",
            "<html>\r\n<head><title>502 Passerelle erron\xe9"
            "e</title></head>\r\n<body>\r\n<center><h1>502 Passerelle erron\xe9"
            "e</h1></center>\r\n<p>R\xe9ponse invalide du serveur amont, r\xe9"
            "essayez \xe0 nouveau.</p>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n");
        return a;
    }
    if (kind == "badurl") {  // an image URL that would inject a header into its download
        const std::string url = call.base + "/sim/files/none.png\r\nX-Injected: 1";
        json::object o;
        if (api == SimApi::chat) {
            json::object part{{"type", "image_url"}, {"image_url", json::object{{"url", url}}}};
            json::object message{{"role", "assistant"}, {"content", json::array{part}}};
            o["choices"] = json::array{json::object{
                {"index", 0}, {"message", std::move(message)}, {"finish_reason", "stop"}}};
        } else {
            o["data"] = json::array{json::object{{"url", url}}};
        }
        return body_answer(200, "application/json", json::serialize(o));
    }
    if (kind == "429far") {  // Retry-After: a date beyond what a nanosecond clock holds
        SimAnswer a = error(api, 429, "requests", "rate_limit_exceeded",
                            "Rate limit reached for requests", "RESOURCE_EXHAUSTED");
        a.headers.emplace_back("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT");
        return a;
    }
    if (kind == "markuprefusal" && api == SimApi::chat) {  // a refusal with no text but markup
        json::object message{
            {"role", "assistant"}, {"content", nullptr}, {"refusal", "<p><br/></p>"}};
        json::object o{{"choices", json::array{json::object{{"index", 0},
                                                            {"message", std::move(message)},
                                                            {"finish_reason", "stop"}}}}};
        return body_answer(200, "application/json", json::serialize(o));
    }
    return error(api, 400, "invalid_request_error", "unknown_sim_directive",
                 "Unknown #fail kind '" + std::string(kind) + "'.", "INVALID_ARGUMENT");
}

}  // namespace imgbatch::daemon
