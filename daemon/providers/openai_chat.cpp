#include "daemon/providers/openai_chat.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_set>
#include <utility>

#include "daemon/providers/answer_json.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

bool is_http_url(std::string_view s) {
    return s.starts_with("http://") || s.starts_with("https://");
}

bool is_b64_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
}

void add_unique(std::vector<std::string>& out, std::string_view ref) {
    if (std::find(out.begin(), out.end(), ref) == out.end()) out.emplace_back(ref);
}

// Length of a bare "data:image/<type>;base64,<data>" URI at the start of s (with some data, or
// with a placeholder "<marker><n>" for data decoded while parsed), or 0.
std::size_t data_uri_length(std::string_view s, std::string_view placeholder_marker) {
    constexpr std::string_view prefix = "data:image/";
    if (!s.starts_with(prefix)) return 0;
    std::size_t i = prefix.size();
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '.' ||
                            s[i] == '+' || s[i] == '-'))
        ++i;
    constexpr std::string_view marker = ";base64,";
    if (s.substr(i, marker.size()) != marker) return 0;
    i += marker.size();
    if (!placeholder_marker.empty() && s.substr(i).starts_with(placeholder_marker)) {
        const std::size_t digits = i + placeholder_marker.size();
        i = digits;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        return i > digits ? i : 0;
    }
    const std::size_t data = i;
    while (i < s.size() && is_b64_char(s[i])) ++i;
    return i > data ? i : 0;  // no data: no image
}

// Words of a refusal, in the languages relays answer in.
bool looks_like_refusal(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    static constexpr std::array<std::string_view, 19> kWords{
        "i can't",
        "i can\xe2\x80\x99t",
        "i cannot",
        "i'm unable",
        "i am unable",
        "i'm not able",
        "unable to generate",
        "sorry",
        "content policy",
        "policy",
        "not allowed",
        "violat",
        "\xe6\x8a\xb1\xe6\xad\x89",  // 抱歉
        "\xe6\x97\xa0\xe6\xb3\x95",  // 无法
        "\xe4\xb8\x8d\xe8\x83\xbd",  // 不能
        "\xe8\xbf\x9d\xe5\x8f\x8d",  // 违反
        "\xe8\xbf\x9d\xe8\xa7\x84",  // 违规
        "\xe6\x95\x8f\xe6\x84\x9f",  // 敏感
        "\xe6\x94\xbf\xe7\xad\x96",  // 政策
    };
    return std::any_of(kWords.begin(), kWords.end(),
                       [&](std::string_view w) { return lower.find(w) != std::string::npos; });
}

std::string string_field(const json::object& o, std::string_view key) {
    if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->get_string());
    return {};
}

// {"type":"image_url","image_url":{"url":...}} or {"image_url":"..."}: the URL, else empty.
std::string image_url_of(const json::value& part) {
    if (part.is_string()) return std::string(part.get_string());
    if (!part.is_object()) return {};
    auto* iu = part.get_object().if_contains("image_url");
    if (!iu) return {};
    if (iu->is_string()) return std::string(iu->get_string());
    if (iu->is_object()) return string_field(iu->get_object(), "url");
    return {};
}

// The provider's text as a message: its readable excerpt; when it is only markup (the excerpt
// is empty), the text itself, trimmed and cut at a UTF-8 boundary; when it is blank, fallback.
std::string readable(std::string_view text, std::string_view fallback) {
    constexpr std::size_t kMax = 300;
    if (auto excerpt = body_excerpt(text, kMax); !excerpt.empty()) return excerpt;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
        text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.remove_suffix(1);
    if (text.empty()) return std::string(fallback);
    if (text.size() <= kMax) return std::string(text);
    std::size_t cut = kMax - 3;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
    return std::string(text.substr(0, cut)) + "...";
}

// A data URI whose data was decoded while the answer was parsed ("<head>,<placeholder>"): its
// bytes, taken from doc; nullopt when ref is an ordinary URI. Invalid base64 gives an item
// without bytes, which decode_data_uri then refuses as well.
std::optional<ImageItem> take_data_uri_blob(std::string_view ref, AnswerJson& doc) {
    const auto comma = ref.find(',');
    if (comma == std::string_view::npos) return std::nullopt;
    auto* blob = doc.blob(ref.substr(comma + 1));
    if (!blob || !*blob) return std::nullopt;
    std::string_view meta = ref.substr(5, comma - 5);  // "image/png;base64"
    ImageItem item;
    item.bytes = std::exchange(**blob, std::string());
    blob->reset();
    item.claimed_mime = std::string(meta.substr(0, meta.size() - 7));
    return item;
}

}  // namespace

std::vector<std::string> find_message_images(std::string_view text, std::string_view marker) {
    std::vector<std::string> out;
    std::unordered_set<std::string_view> seen;  // views into text
    auto add = [&](std::string_view ref) {
        if (seen.insert(ref).second) out.emplace_back(ref);
    };
    // The next "![", "data:image/" and ']' at or after the scan position. Each is searched for
    // again only once the scan has passed it, so the text is read a bounded number of times
    // (linear time, whatever the text holds).
    constexpr auto npos = std::string_view::npos;
    std::size_t md = text.find("!["), bare = text.find("data:image/"), close = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        if (md != npos && md < i) md = text.find("![", i);
        if (bare != npos && bare < i) bare = text.find("data:image/", i);
        if (md == npos && bare == npos) break;
        if (bare < md) {
            std::size_t len = data_uri_length(text.substr(bare), marker);
            if (len > 0) add(text.substr(bare, len));
            i = bare + std::max<std::size_t>(len, 1);
            continue;
        }
        // ![alt](target "title"): the alt text ends at the first ']' that opens a target.
        if (close != npos && close < md + 2) close = text.find(']', md + 2);
        if (close == npos) {  // no ']' anywhere after: no more markdown images
            md = npos;
            continue;
        }
        if (close + 1 >= text.size() || text[close + 1] != '(') {
            i = md + 2;
            continue;
        }
        std::size_t t = close + 2;
        while (t < text.size() && (text[t] == ' ' || text[t] == '\t' || text[t] == '<')) ++t;
        std::size_t end = t;
        while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) &&
               text[end] != ')' && text[end] != '>')
            ++end;
        std::string_view target = text.substr(t, end - t);
        if (is_http_url(target) || (target.starts_with("data:image/") && !target.ends_with(",")))
            add(target);
        i = std::max(end, md + 2);
    }
    return out;
}

HttpRequest build_openai_chat(const GenerationRequest& req, const ProviderConfig& provider,
                              std::string_view api_key) {
    json::object message;
    message["role"] = "user";
    message["content"] = req.prompt;
    json::object body;
    body["model"] = req.model;
    body["messages"] = json::array{std::move(message)};
    body["stream"] = false;  // we read one JSON answer, not server-sent events
    // Only params under "chat" are chat options; image fields mean nothing to this endpoint.
    if (auto* chat = req.params.if_contains("chat"); chat && chat->is_object()) {
        for (const auto& [key, value] : chat->get_object())
            if (key != "model" && key != "messages" && key != "stream") body[key] = value;
    }
    HttpRequest http;
    http.url = join_url(provider.base_url, "/chat/completions");
    http.headers = json_request_headers(provider, "Authorization",
                                        api_key.empty() ? "" : "Bearer " + std::string(api_key));
    http.body = json::serialize(body);
    return http;
}

ParsedResponse parse_openai_chat(const HttpResponse& response, const GenerationRequest&) {
    ParsedResponse out;
    json::value storage;
    const json::object* parsed = success_body(response, storage, out, ErrorObject::reject);
    if (!parsed) return out;
    return read_chat_answer(*parsed, response.status, response.body, std::move(out));
}

ParsedResponse parse_openai_chat_owned(HttpResponse&& response, const GenerationRequest&) {
    ParsedResponse out;
    AnswerJson doc;
    json::object* body =
        success_body_owned(response, doc, out, ErrorObject::reject, {}, kChatUriKeys);
    if (!body) return out;
    return read_chat_answer(*body, response.status, {}, std::move(out), &doc);
}

ParsedResponse read_chat_answer(const json::object& body, int status, std::string_view answer_text,
                                ParsedResponse out, AnswerJson* doc) {
    if (auto* usage = body.if_contains("usage"); usage && usage->is_object())
        out.usage_json = json::serialize(*usage);

    auto* choices = body.if_contains("choices");
    if (!choices || !choices->is_array() || choices->get_array().empty() ||
        !choices->get_array()[0].is_object()) {
        out.error = bad_response_error(
            status, "no_choices",
            "no choices in the answer: " +
                body_excerpt(answer_text.empty() ? json::serialize(body) : std::string(answer_text),
                             200));
        return out;
    }
    const auto& choice = choices->get_array()[0].get_object();
    std::string finish = string_field(choice, "finish_reason");
    std::string text, refusal;
    std::vector<std::string> refs;
    if (auto* m = choice.if_contains("message"); m && m->is_object()) {
        const auto& msg = m->get_object();
        refusal = string_field(msg, "refusal");
        // Some relays list images beside the text: message.images[].image_url.url.
        if (auto* imgs = msg.if_contains("images"); imgs && imgs->is_array())
            for (const auto& img : imgs->get_array())
                if (auto url = image_url_of(img); !url.empty()) add_unique(refs, url);
        if (auto* c = msg.if_contains("content")) {
            if (c->is_string()) {
                text = std::string(c->get_string());
            } else if (c->is_array()) {  // content parts: text and image_url
                for (const auto& part : c->get_array()) {
                    if (!part.is_object()) continue;
                    if (auto t = string_field(part.get_object(), "text"); !t.empty())
                        text += (text.empty() ? "" : "\n") + t;
                    else if (auto url = image_url_of(part); !url.empty())
                        add_unique(refs, url);
                }
            }
        }
    }
    for (auto& ref : find_message_images(text, doc ? std::string_view(doc->marker) : ""))
        add_unique(refs, ref);

    std::size_t index = 0;
    for (const auto& ref : refs) {
        ++index;
        if (is_http_url(ref)) {
            ImageItem item;
            item.url = ref;
            out.images.push_back(std::move(item));
        } else if (ref.starts_with("data:")) {
            auto item = doc ? take_data_uri_blob(ref, *doc) : std::nullopt;
            if (!item) item = decode_data_uri(ref);
            if (!item) {
                out.images.clear();
                out.error =
                    bad_response_error(status, "invalid_base64",
                                       "image " + std::to_string(index) + ": invalid base64");
                return out;
            }
            out.images.push_back(std::move(*item));
        }
    }
    if (auto err = drop_invalid_urls(out.images, status)) {
        out.error = std::move(err);
        return out;
    }
    if (!out.images.empty()) return out;

    jobs::Error err;
    err.http_status = status;
    err.cls = jobs::ErrorClass::moderation;
    if (finish == "content_filter") {
        err.code = "content_filter";
        err.message = readable(text, "the provider's content filter stopped the answer");
    } else if (!refusal.empty() || looks_like_refusal(text)) {
        err.code = "refused";
        err.message = readable(refusal.empty() ? text : refusal, "refused without a reason");
    } else {
        err = bad_response_error(status, "no_image",
                                 "no image in the message: " + body_excerpt(text, 200));
    }
    out.error = std::move(err);
    return out;
}

}  // namespace imgbatch::daemon
