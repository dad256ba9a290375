// Image references in a chat message text: markdown images and bare data:image URIs.
#include "daemon/providers/openai_chat.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    const auto text = fuzz::as_text(data, size);
    const auto refs = daemon::find_message_images(text);
    for (std::size_t i = 0; i < refs.size(); ++i) {
        fuzz::require(text.find(refs[i]) != std::string_view::npos, "a reference is in the text");
        fuzz::require(refs[i].starts_with("http://") || refs[i].starts_with("https://") ||
                          refs[i].starts_with("data:image/"),
                      "an http(s) URL or an image data URI");
        for (std::size_t j = 0; j < i; ++j) fuzz::require(refs[i] != refs[j], "no duplicates");
    }
    return 0;
}
