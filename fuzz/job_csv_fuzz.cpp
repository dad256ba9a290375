// Job files in .csv: parse_job_file, then validation of every job read.
#include "fuzz/fuzz_input.hpp"
#include "jobs/job_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    const auto text = fuzz::as_text(data, size);
    jobs::JobDefaults defaults;
    defaults.model = "gpt-image-1";
    const auto parsed = jobs::parse_job_file(text, "fuzz.csv", jobs::FileFormat::csv, defaults);
    fuzz::check_jobs(text, parsed);
    return 0;
}
