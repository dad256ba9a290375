#pragma once
// What every provider answer parser promises, whatever the answer.
#include "daemon/providers/provider.hpp"
#include "fuzz/fuzz_input.hpp"

namespace imgbatch::fuzz {

inline void check_parsed(const daemon::HttpResponse& response,
                         const daemon::ParsedResponse& parsed) {
    const bool ok_status = response.status >= 200 && response.status <= 299;
    require(ok_status || parsed.error.has_value(), "an error status is an error");
    require(parsed.error.has_value() || !parsed.images.empty(), "no images is an error");
    if (parsed.error) {
        require(!parsed.error->message.empty(), "an error has a message");
        if (parsed.error->retry_after_s)
            require(*parsed.error->retry_after_s >= 0 &&
                        *parsed.error->retry_after_s <= daemon::kMaxRetryAfterS,
                    "Retry-After within [0, kMaxRetryAfterS]");
    }
    for (const auto& image : parsed.images) {
        // Not both. (Neither happens: base64 of only padding or blanks decodes to no bytes,
        // which the engine counts as a missing image.)
        require(image.bytes.empty() || image.url.empty(), "an image has bytes or a URL");
        if (!image.url.empty()) {
            daemon::Url url;
            require(daemon::parse_url(image.url, url), "an image URL is a valid URL");
            for (unsigned char c : url.host + url.target)
                require(c > 0x20 && c < 0x7f, "no control characters or spaces in a request");
        }
    }
}

}  // namespace imgbatch::fuzz
