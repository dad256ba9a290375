#pragma once
// A provider's JSON answer read with about one copy of it in memory. The text is parsed in
// chunks and the pages already parsed are given back to the system at once; the string values
// of the image keys (b64_json, bytesBase64Encoded) that are large are base64-decoded while
// they are read and never held as text. What is left is a small document plus the images'
// bytes (3/4 of their text).
#include <boost/json/value.hpp>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/providers/provider.hpp"

namespace imgbatch::daemon {

struct AnswerJson {
    boost::json::value value;
    // Decoded bytes of the large image strings, in document order; nullopt where the text was
    // not valid base64.
    std::vector<std::optional<std::string>> blobs;
    // The blob a string value of the document stands for, or nullptr for an ordinary string.
    std::optional<std::string>* blob(const boost::json::value& v);
    // The blob a placeholder string stands for (the whole of s), or nullptr.
    std::optional<std::string>* blob(std::string_view s);

    std::string marker;  // prefix of the placeholder strings, unique to this parse
};

// The bytes of an image's base64 text v in an answer (decoded while parsed when doc holds it
// as a blob, else now); v is set to null so that the text is not held beside the bytes. When
// the text is not valid base64, the first such image is named in out.item_error ("image
// INDEX: invalid base64", INDEX 1-based) and nullopt is returned: the other images are kept.
std::optional<std::string> take_base64_image(boost::json::value& v, AnswerJson* doc,
                                             std::size_t index, ParsedResponse& out);

// Strings under blob_keys of at least this many bytes become blobs.
inline constexpr std::size_t kBlobMinBytes = 64 * 1024;

// Parses text, which is taken: it is empty on return, its pages released while parsing.
// nullopt when text is not one JSON document.
std::optional<AnswerJson> parse_answer_json(std::string&& text,
                                            std::initializer_list<std::string_view> blob_keys,
                                            std::size_t blob_min_bytes = kBlobMinBytes);
// The same, and the string values under uri_keys of at least blob_min_bytes are text that may
// hold data URIs ("data:image/<type>;base64,<data>", a chat answer's markdown): each URI's data
// is decoded into a blob while read, and the string keeps its text with the placeholder in
// place of the data (the URI's head stays). A head with no data stays text.
std::optional<AnswerJson> parse_answer_json(std::string&& text,
                                            std::initializer_list<std::string_view> blob_keys,
                                            std::initializer_list<std::string_view> uri_keys,
                                            std::size_t blob_min_bytes = kBlobMinBytes);

// success_body (provider.hpp) for a taken answer: an error status goes through
// error_from_response, a 2xx body through parse_answer_json (response.body is empty after).
// Returns the body object in doc, or nullptr with out.error set.
boost::json::object* success_body_owned(HttpResponse& response, AnswerJson& doc,
                                        ParsedResponse& out, ErrorObject error_object,
                                        std::initializer_list<std::string_view> blob_keys,
                                        std::initializer_list<std::string_view> uri_keys = {});

}  // namespace imgbatch::daemon
