#pragma once
// JSON text for people and programs: Boost.JSON's serializer with its numbers in plain decimal
// form. Boost prints a double in the shortest scientific form ("cost_usd":2.454E-2, 1E0);
// imgbatch's outputs (status --json, show --json, export, enqueue --json, sidecars) print
// 0.02454 and 1 instead: the same JSON number, the same double when read back.
#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace imgbatch::daemon {

// json::serialize(v), every number with a fraction or an exponent rewritten as the shortest
// plain decimal that reads back as the same double (magnitudes outside 1e-12 .. 1e17 and
// non-finite values keep Boost's form).
std::string json_text(const boost::json::value& v);

// The same rewrite on JSON text already serialized by Boost.JSON.
std::string plain_json_numbers(std::string_view text);

}  // namespace imgbatch::daemon
