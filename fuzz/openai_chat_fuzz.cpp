// The openai_chat answer parser, on an answer "STATUS\nheaders\n\nbody" (fuzz_input.hpp).
// Also differential: the answer read while parsed (data URIs of the message decoded as they
// are read, with a threshold low enough for small inputs) gives the same images and the same
// kind of error as the answer parsed whole.
#include <boost/json/object.hpp>

#include "daemon/providers/answer_json.hpp"
#include "daemon/providers/openai_chat.hpp"
#include "fuzz/provider_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    const auto response = fuzz::response_from(fuzz::as_text(data, size));
    for (int n : {1, 4}) {
        daemon::GenerationRequest req{"model", "prompt", n, {}};
        fuzz::check_parsed(response, daemon::parse_openai_chat(response, req));
    }
    if (response.status < 200 || response.status > 299) return 0;
    daemon::GenerationRequest req{"model", "prompt", 1, {}};
    const auto whole = daemon::parse_openai_chat(response, req);
    auto doc = daemon::parse_answer_json(std::string(response.body), {}, daemon::kChatUriKeys, 8);
    if (!doc || !doc->value.is_object()) {
        fuzz::require(whole.error.has_value(), "not a JSON object either way");
        return 0;
    }
    if (daemon::error_in_success_body(doc->value.get_object(), response.status)) return 0;
    const auto streamed =
        daemon::read_chat_answer(doc->value.get_object(), response.status, {}, {}, &*doc);
    fuzz::check_parsed(response, streamed);
    fuzz::require(whole.error.has_value() == streamed.error.has_value(), "the same outcome");
    if (whole.error && streamed.error)
        fuzz::require(whole.error->cls == streamed.error->cls, "the same error class");
    fuzz::require(whole.images.size() == streamed.images.size(), "the same number of images");
    for (std::size_t i = 0; i < whole.images.size() && i < streamed.images.size(); ++i) {
        fuzz::require(whole.images[i].bytes == streamed.images[i].bytes, "the same bytes");
        fuzz::require(whole.images[i].url == streamed.images[i].url, "the same URL");
    }
    return 0;
}
