// The google_predict answer parser, on an answer "STATUS\nheaders\n\nbody" (fuzz_input.hpp).
#include "daemon/providers/google_predict.hpp"
#include "fuzz/provider_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    const auto response = fuzz::response_from(fuzz::as_text(data, size));
    for (int n : {1, 4}) {
        daemon::GenerationRequest req{"model", "prompt", n, {}};
        fuzz::check_parsed(response, daemon::parse_google_predict(response, req));
    }
    return 0;
}
