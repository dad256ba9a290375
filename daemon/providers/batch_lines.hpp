#pragma once
// What the vendor batch adapters (openai_batch, gemini_batch) share: the requests' common
// start, the reading of an answer's JSON object and of a result file's line, and the lenient
// field readers every batch object goes through. Pure functions, no socket.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/net/http.hpp"
#include "daemon/providers/batch_types.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon::batch_lines {

// A request with these headers (json_request_headers): a GET carries no Content-Type.
HttpRequest request(std::string_view method, std::string url, Headers headers);
// A file download: Accept */* (the file is JSONL, not JSON).
void accept_any(HttpRequest& request);

// The answer's object, or error set: a non-2xx answer (error_from_response), or a body that is
// not a JSON object (bad_response "not_json"). The object is held in storage.
const boost::json::object* body_object(const HttpResponse& response, boost::json::value& storage,
                                       std::optional<jobs::Error>& error);
// How a vendor's batch object is read.
using ReadBatch = batch_types::Batch (*)(const boost::json::object&);
// A batch object's answer (create, get, cancel) read by read, or nullopt with error set: as
// body_object, or bad_response "no_id" with no_id_message when it has no id or status.
std::optional<batch_types::Batch> parse_batch(const HttpResponse& response, ReadBatch read,
                                              std::string_view no_id_message,
                                              std::optional<jobs::Error>& error);
// A list answer, or nullopt with error set (as body_object): the objects of the array at
// list_key read by read, last_id the string at cursor_key; has_more the boolean at more_key,
// or when more_key is empty, whether there is a cursor.
std::optional<batch_types::BatchPage> parse_page(const HttpResponse& response,
                                                 std::string_view list_key,
                                                 std::string_view cursor_key,
                                                 std::string_view more_key, ReadBatch read,
                                                 std::optional<jobs::Error>& error);

// One line of a result file as a JSON object; nullopt (why: "not a JSON object") when it is
// not one.
std::optional<boost::json::object> line_object(std::string_view text, std::string* why);
// A line's answer as a direct call's HTTP answer: status and a JSON body.
HttpResponse json_response(int status, std::string body);

// The string at key; "" when absent or not a string.
std::string str(const boost::json::object& o, std::string_view key);
// How num reads a string value: as 0, or as a proto3 JSON int64 (a string of digits).
enum class Digits { reject, accept };
// The number at key as an int64 (int, uint or double); 0 when absent or not such a number.
std::int64_t num(const boost::json::object& o, std::string_view key,
                 Digits digits = Digits::reject);
// The object at key; nullptr when absent or not an object.
const boost::json::object* object_at(const boost::json::object& o, std::string_view key);

}  // namespace imgbatch::daemon::batch_lines
