// parse_url: what it accepts can go into a request line and a Host header as it is.
#include "daemon/net/http.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    daemon::Url url;
    if (!daemon::parse_url(fuzz::as_text(data, size), url)) return 0;
    fuzz::require(url.scheme == "http" || url.scheme == "https", "scheme");
    fuzz::require(!url.host.empty() && !url.target.empty() && url.target.front() == '/',
                  "host and target");
    for (unsigned char c : url.host + url.target)
        fuzz::require(c > 0x20 && c < 0x7f, "no control characters, spaces or raw bytes");
    fuzz::require(url.port.size() <= 5 && std::stoi(url.port) >= 1 && std::stoi(url.port) <= 65535,
                  "port 1-65535");
    // What it gives reads back the same.
    const bool v6 = url.host.find(':') != std::string::npos;
    const std::string again =
        url.scheme + "://" + (v6 ? "[" + url.host + "]" : url.host) + ":" + url.port + url.target;
    daemon::Url url2;
    fuzz::require(daemon::parse_url(again, url2), "a parsed URL parses again");
    fuzz::require(url2.host == url.host && url2.port == url.port && url2.target == url.target,
                  "and gives the same parts");
    return 0;
}
