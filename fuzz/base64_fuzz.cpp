// base64_decode of any text, and the round trip of any bytes.
#include "daemon/image.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    const auto text = fuzz::as_text(data, size);
    if (auto bytes = daemon::base64_decode(text)) {
        fuzz::require(bytes->size() <= text.size() * 3 / 4 + 3, "decoded size");
        auto again = daemon::base64_decode(daemon::base64_encode(*bytes));
        fuzz::require(again && *again == *bytes, "decode(encode(x)) == x");
    }
    auto round = daemon::base64_decode(daemon::base64_encode(text));
    fuzz::require(round && *round == text, "decode(encode(bytes)) == bytes");
    return 0;
}
