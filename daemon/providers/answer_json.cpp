// parse_answer_json: boost::json's basic_parser with a handler that builds the document on a
// value_stack (as boost::json::parser does) but decodes large image strings on the fly.
#include "daemon/providers/answer_json.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <cstdint>
#include <utility>

#include "daemon/image.hpp"

namespace imgbatch::daemon {
namespace json = boost::json;

namespace {

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

bool is_mime_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '+' || c == '-';
}

// Whether text ends with a data URI's head, "data:image/<type>;base64,".
bool ends_with_data_uri_head(std::string_view text) {
    constexpr std::string_view tail = ";base64,", head = "data:image/";
    if (!text.ends_with(tail)) return false;
    std::size_t end = text.size() - tail.size(), i = end;
    while (i > 0 && is_mime_char(text[i - 1])) --i;
    return i >= head.size() && text.substr(i - head.size(), head.size()) == head;
}

struct BlobHandler {
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();

    json::value_stack st;
    std::vector<std::string_view> blob_keys;
    std::size_t blob_min = kBlobMinBytes;
    std::string marker;
    std::vector<std::optional<std::string>> blobs;
    std::size_t input_left = 0;  // bytes of text not parsed yet: bounds a blob's size

    std::string key;            // the last key read
    bool next_is_blob = false;  // the value that follows key may become a blob
    bool candidate = false;     // the current string may become a blob
    bool in_blob = false;       // the current string is being decoded into blobs.back()
    std::string pending;        // the start of a candidate string
    Base64Decoder decoder;
    // Text strings that may hold data URIs (a chat answer's markdown): a large one is kept as
    // its text with each URI's base64 data decoded into a blob while read and replaced by the
    // placeholder (the URI's head stays: "data:image/png;base64,<placeholder>").
    std::vector<std::string_view> uri_keys;
    bool next_is_text = false;  // the value that follows key may hold data URIs
    bool text_candidate = false;
    bool scanning = false;  // the current string is being scanned for data URIs
    bool in_data = false;   // inside a data URI's base64, decoded into blobs.back()
    std::size_t data_chars = 0;
    std::string text;  // the scanned string's text, data replaced by placeholders

    void start_string() {
        candidate = next_is_blob;
        text_candidate = next_is_text;
        next_is_blob = next_is_text = false;
        in_blob = scanning = in_data = false;
        pending.clear();
    }
    std::string placeholder() const { return marker + std::to_string(blobs.size() - 1); }
    void start_scan() {
        scanning = true;
        text.clear();
        scan(pending);
        std::string().swap(pending);
    }
    void scan(std::string_view s) {
        while (!s.empty()) {
            if (in_data) {
                std::size_t n = 0;
                while (n < s.size() && is_base64_char(s[n])) ++n;
                feed(s.substr(0, n));
                data_chars += n;
                s.remove_prefix(n);
                if (s.empty()) break;
                end_data();
                continue;
            }
            const std::size_t comma = s.find(',');
            if (comma == std::string_view::npos) {
                text.append(s);
                break;
            }
            text.append(s.substr(0, comma + 1));
            s.remove_prefix(comma + 1);
            if (ends_with_data_uri_head(text)) {
                in_data = true;
                data_chars = 0;
                decoder = Base64Decoder{};
                std::string bytes;
                bytes.reserve(input_left / 4 * 3 + 3);  // untouched capacity costs no memory
                blobs.emplace_back(std::move(bytes));
            }
        }
    }
    void end_data() {
        in_data = false;
        if (data_chars == 0) {  // a head with no data: no image, the text stays as it was
            blobs.pop_back();
            return;
        }
        if (blobs.back() && !decoder.finish()) blobs.back().reset();
        // The same URI again (a relay linking its image twice) is the same image, as it is
        // for find_message_images.
        for (std::size_t j = 0; j + 1 < blobs.size(); ++j) {
            if (blobs[j] && blobs.back() && *blobs[j] == *blobs.back()) {
                blobs.pop_back();
                text += marker + std::to_string(j);
                return;
            }
        }
        text += placeholder();
    }
    void end_scan() {
        if (in_data) end_data();
        st.push_string(text);
        std::string().swap(text);
        scanning = false;
    }
    void start_blob() {
        in_blob = true;
        decoder = Base64Decoder{};
        std::string bytes;
        // Room for the most it can be: untouched capacity costs no memory, a regrowth would.
        bytes.reserve((pending.size() + input_left) / 4 * 3 + 3);
        blobs.emplace_back(std::move(bytes));
        feed(pending);
        std::string().swap(pending);
    }
    void feed(std::string_view s) {
        if (blobs.back() && !decoder.feed(s, *blobs.back())) blobs.back().reset();
    }
    void end_blob() {
        if (blobs.back() && !decoder.finish()) blobs.back().reset();
        st.push_string(placeholder());
        in_blob = false;
    }
    void value_seen() { next_is_blob = next_is_text = false; }

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) {
        value_seen();
        return true;
    }
    bool on_object_end(std::size_t n, json::error_code&) {
        st.push_object(n);
        return true;
    }
    bool on_array_begin(json::error_code&) {
        value_seen();
        return true;
    }
    bool on_array_end(std::size_t n, json::error_code&) {
        st.push_array(n);
        return true;
    }
    bool on_key_part(json::string_view s, std::size_t n, json::error_code&) {
        if (n == s.size()) key.clear();
        key.append(s.data(), s.size());
        st.push_chars(s);
        return true;
    }
    bool on_key(json::string_view s, std::size_t n, json::error_code&) {
        if (n == s.size()) key.clear();
        key.append(s.data(), s.size());
        st.push_key(s);
        next_is_blob = std::find(blob_keys.begin(), blob_keys.end(), key) != blob_keys.end();
        next_is_text = std::find(uri_keys.begin(), uri_keys.end(), key) != uri_keys.end();
        return true;
    }
    bool on_string_part(json::string_view s, std::size_t n, json::error_code&) {
        if (n == s.size()) start_string();
        std::string_view part(s.data(), s.size());
        if (in_blob) {
            feed(part);
        } else if (scanning) {
            scan(part);
        } else if (candidate || text_candidate) {
            pending.append(part);
            if (pending.size() >= blob_min) candidate ? start_blob() : start_scan();
        } else {
            st.push_chars(s);
        }
        return true;
    }
    bool on_string(json::string_view s, std::size_t n, json::error_code&) {
        if (n == s.size()) start_string();
        std::string_view part(s.data(), s.size());
        if (in_blob) {
            feed(part);
            end_blob();
        } else if (scanning) {
            scan(part);
            end_scan();
        } else if (text_candidate) {
            pending.append(part);
            if (pending.size() >= blob_min) {
                start_scan();
                end_scan();
            } else {
                st.push_string(pending);
            }
        } else if (candidate) {
            pending.append(part);
            if (pending.size() >= blob_min) {
                start_blob();
                end_blob();
            } else {
                st.push_string(pending);
            }
        } else {
            st.push_string(s);
        }
        candidate = text_candidate = false;
        return true;
    }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
        value_seen();
        st.push_int64(i);
        return true;
    }
    bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
        value_seen();
        st.push_uint64(u);
        return true;
    }
    bool on_double(double d, json::string_view, json::error_code&) {
        value_seen();
        st.push_double(d);
        return true;
    }
    bool on_bool(bool b, json::error_code&) {
        value_seen();
        st.push_bool(b);
        return true;
    }
    bool on_null(json::error_code&) {
        value_seen();
        st.push_null();
        return true;
    }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }
};

// Gives the whole pages of [data + from, data + to) back to the system: they were parsed and
// are never read again (the string is freed right after). Returns the new `from`.
std::size_t release_pages(char* data, std::size_t from, std::size_t to) {
    static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<std::uintptr_t>(data) + from + page - 1) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + to) / page * page;
    if (end <= begin) return from;
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
    return end - reinterpret_cast<std::uintptr_t>(data);
}

std::string new_marker() {
    static std::atomic<std::uint64_t> counter{0};
    std::uint64_t n = counter.fetch_add(1) ^
                      static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&counter));
    return std::string("\x01imgbatch-blob-", 15) + std::to_string(n) + "-" +
           std::to_string(static_cast<std::uint64_t>(getpid())) + ":";
}

}  // namespace

std::optional<std::string>* AnswerJson::blob(const json::value& v) {
    if (!v.is_string()) return nullptr;
    return blob(std::string_view(v.get_string()));
}

std::optional<std::string>* AnswerJson::blob(std::string_view s) {
    if (marker.empty() || !s.starts_with(marker)) return nullptr;
    std::size_t index = 0;
    for (char c : s.substr(marker.size())) {
        if (c < '0' || c > '9') return nullptr;
        index = index * 10 + static_cast<std::size_t>(c - '0');
        if (index >= blobs.size()) return nullptr;
    }
    return &blobs[index];
}

std::optional<AnswerJson> parse_answer_json(std::string&& text,
                                            std::initializer_list<std::string_view> blob_keys,
                                            std::size_t blob_min_bytes) {
    return parse_answer_json(std::move(text), blob_keys, {}, blob_min_bytes);
}

std::optional<AnswerJson> parse_answer_json(std::string&& text,
                                            std::initializer_list<std::string_view> blob_keys,
                                            std::initializer_list<std::string_view> uri_keys,
                                            std::size_t blob_min_bytes) {
    std::string owned = std::move(text);
    text.clear();
    json::basic_parser<BlobHandler> parser(json::parse_options{});
    auto& h = parser.handler();
    h.st.reset();
    h.blob_keys.assign(blob_keys.begin(), blob_keys.end());
    h.uri_keys.assign(uri_keys.begin(), uri_keys.end());
    h.blob_min = blob_min_bytes;
    h.marker = new_marker();

    constexpr std::size_t kChunk = 1u << 20;
    json::error_code ec;
    std::size_t pos = 0, released = 0;
    while (!parser.done()) {
        const std::size_t len = std::min(kChunk, owned.size() - pos);
        const bool more = pos + len < owned.size();
        h.input_left = owned.size() - pos;
        const std::size_t used = parser.write_some(more, owned.data() + pos, len, ec);
        if (ec) return std::nullopt;
        pos += used;
        released = release_pages(owned.data(), released, pos);
        if (!more && !parser.done()) return std::nullopt;
        if (used == 0 && !parser.done()) return std::nullopt;
    }
    // Only white space may follow the document.
    for (; pos < owned.size(); ++pos)
        if (owned[pos] != ' ' && owned[pos] != '\t' && owned[pos] != '\r' && owned[pos] != '\n')
            return std::nullopt;
    std::string().swap(owned);
    AnswerJson out;
    out.value = h.st.release();
    out.blobs = std::move(h.blobs);
    out.marker = std::move(h.marker);
    return out;
}

json::object* success_body_owned(HttpResponse& response, AnswerJson& doc, ParsedResponse& out,
                                 ErrorObject error_object,
                                 std::initializer_list<std::string_view> blob_keys,
                                 std::initializer_list<std::string_view> uri_keys) {
    if (response.status < 200 || response.status > 299) {
        out.error = error_from_response(response);
        return nullptr;
    }
    // Parsed pages are gone afterwards: keep the start for a message.
    const std::string head = response.body.substr(0, 512);
    auto parsed = parse_answer_json(std::move(response.body), blob_keys, uri_keys);
    if (!parsed || !parsed->value.is_object()) {
        out.error =
            bad_response_error(response.status, "not_json",
                               "the answer is not a JSON object: " + body_excerpt(head, 200));
        return nullptr;
    }
    doc = std::move(*parsed);
    auto& body = doc.value.get_object();
    if (error_object == ErrorObject::reject) {
        if (auto err = error_in_success_body(body, response.status)) {
            out.error = std::move(err);
            return nullptr;
        }
    }
    return &body;
}

std::optional<std::string> take_base64_image(boost::json::value& v, AnswerJson* doc,
                                             std::size_t index, ParsedResponse& out) {
    std::optional<std::string> bytes;
    if (auto* blob = doc ? doc->blob(v) : nullptr)  // decoded while parsed
        bytes = std::exchange(*blob, std::nullopt);
    else if (v.is_string())
        bytes = base64_decode(v.get_string());
    v = nullptr;
    if (!bytes && out.item_error.empty())
        out.item_error = "image " + std::to_string(index) + ": invalid base64";
    return bytes;
}

}  // namespace imgbatch::daemon
