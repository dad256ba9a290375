#include "jobs/error.hpp"

#include <array>
#include <utility>

namespace imgbatch::jobs {
namespace {
constexpr std::array<std::pair<ErrorClass, std::string_view>, 11> kNames{{
    {ErrorClass::timeout, "timeout"},
    {ErrorClass::network, "network"},
    {ErrorClass::rate_limited, "rate_limited"},
    {ErrorClass::server, "server"},
    {ErrorClass::moderation, "moderation"},
    {ErrorClass::partial, "partial"},
    {ErrorClass::invalid_request, "invalid_request"},
    {ErrorClass::auth, "auth"},
    {ErrorClass::quota, "quota"},
    {ErrorClass::bad_response, "bad_response"},
    {ErrorClass::local, "local"},
}};
}  // namespace

std::string_view to_string(ErrorClass c) {
    for (const auto& [cls, name] : kNames)
        if (cls == c) return name;
    return "unknown";
}

std::optional<ErrorClass> error_class_from(std::string_view name) {
    for (const auto& [cls, n] : kNames)
        if (n == name) return cls;
    return std::nullopt;
}

}  // namespace imgbatch::jobs
