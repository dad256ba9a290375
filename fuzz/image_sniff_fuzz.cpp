// Image type and dimensions from magic bytes (PNG, JPEG, WebP).
#include "daemon/image.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    if (auto info = daemon::sniff_image(fuzz::as_text(data, size))) {
        fuzz::require(info->width >= 0 && info->height >= 0, "dimensions are not negative");
        fuzz::require(info->ext == "png" || info->ext == "jpg" || info->ext == "webp",
                      "a known extension");
    }
    return 0;
}
