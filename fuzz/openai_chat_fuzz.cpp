// The openai_chat answer parser, on an answer "STATUS\nheaders\n\nbody" (fuzz_input.hpp).
#include "daemon/providers/openai_chat.hpp"
#include "fuzz/provider_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    const auto response = fuzz::response_from(fuzz::as_text(data, size));
    for (int n : {1, 4}) {
        daemon::GenerationRequest req{"model", "prompt", n, {}};
        fuzz::check_parsed(response, daemon::parse_openai_chat(response, req));
    }
    return 0;
}
