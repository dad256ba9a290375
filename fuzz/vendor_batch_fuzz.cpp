// The vendor batch parsers (OpenAI Batch API, Gemini Batch Mode) on one input: read as an
// answer "STATUS\nheaders\n\nbody" (fuzz_input.hpp) to a create/get/list/upload call, its body
// as a finished Gemini Operation with inlined responses, and each line of the body as a line
// of a results file.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "daemon/providers/gemini_batch.hpp"
#include "daemon/providers/openai_batch.hpp"
#include "fuzz/fuzz_input.hpp"

namespace {

using imgbatch::fuzz::require;
namespace bt = imgbatch::daemon::batch_types;

void check_batch(const std::optional<bt::Batch>& b, const std::optional<imgbatch::jobs::Error>& e) {
    require(b.has_value() != e.has_value(), "a batch answer is a batch or an error");
    if (b) require(b->total >= 0 && b->completed >= 0 && b->failed >= 0, "counts are not negative");
}

void check_page(const std::optional<bt::BatchPage>& p,
                const std::optional<imgbatch::jobs::Error>& e) {
    require(p.has_value() != e.has_value(), "a page answer is a page or an error");
}

void check_line(const std::optional<bt::Line>& line, const std::string& why) {
    if (!line) {
        require(!why.empty(), "a line that is not read says why");
        return;
    }
    require(!line->custom_id.empty(), "a line read has its key");
    if (line->response)
        require(line->response->status == 0 ||
                    (line->response->status >= 100 && line->response->status <= 599),
                "a line's answer has an HTTP status, or 0 for none");
}

void each_line(std::string_view text, auto&& fn) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        fn(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch::daemon;
    const auto response = imgbatch::fuzz::response_from(imgbatch::fuzz::as_text(data, size));
    std::optional<imgbatch::jobs::Error> e;
    auto ob = openai_batch::parse_batch(response, e);
    check_batch(ob, e);
    e.reset();
    check_page(openai_batch::parse_list(response, e), e);
    e.reset();
    auto gb = gemini_batch::parse_batch(response, e);
    check_batch(gb, e);
    e.reset();
    check_page(gemini_batch::parse_list(response, e), e);
    e.reset();
    const std::string file = openai_batch::parse_file(response, e);
    require(file.empty() == e.has_value(), "an upload answer is a file id or an error");
    e.reset();
    (void)gemini_batch::parse_file(response, e);
    e.reset();
    (void)gemini_batch::parse_upload_start(response, e);

    auto read_lines = [](std::string_view text) {
        each_line(text, [](std::string_view line) {
            std::string why;
            check_line(openai_batch::parse_line(line, &why), why);
            why.clear();
            check_line(gemini_batch::parse_line(line, &why), why);
        });
    };
    read_lines(response.body);
    try {
        read_lines(gemini_batch::inline_lines(response.body));
    } catch (const std::runtime_error&) {
        // not such an Operation: said by the exception
    }
    return 0;
}
