#pragma once
// A job as read from an input file or a pending row, before and after validation.
#include <boost/json/object.hpp>
#include <string>

namespace imgbatch::jobs {

struct JobSpec {
    std::string prompt;
    std::string model;
    std::string provider;  // empty: the first provider serving the model
    std::string key;       // idempotency key (or custom_id); empty: none
    int n = 1;
    int priority = 0;
    // Generation parameters: the named fields of a job line (size, aspect_ratio, quality, style,
    // background, moderation, output_format, output_compression, image_size,
    // person_generation) merged with the line's "params" object (which passes through).
    boost::json::object params;
    boost::json::object metadata;  // kept for the caller, exported as is
    // Where it came from, for error messages: "FILE:LINE".
    std::string source;
    int line = 0;
};

}  // namespace imgbatch::jobs
