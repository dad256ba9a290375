// Proxy settings: HTTP(S)_PROXY URLs with credentials, NO_PROXY lists, loopback hosts. The
// input is split into the proxy URL, NO_PROXY and the URL asked for.
#include <fuzzer/FuzzedDataProvider.h>

#include <stdexcept>

#include "daemon/net/http_client.hpp"
#include "fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace imgbatch;
    FuzzedDataProvider in(data, size);
    daemon::ProxySettings settings;
    settings.http_proxy = in.ConsumeRandomLengthString(256);
    settings.https_proxy = settings.http_proxy;
    settings.no_proxy = in.ConsumeRandomLengthString(256);
    const std::string target = in.ConsumeRemainingBytesAsString();
    daemon::is_loopback_host(target);
    daemon::no_proxy_matches(target, "443", settings.no_proxy);
    daemon::Url url;
    if (!daemon::parse_url(target, url)) return 0;
    try {
        if (auto route = daemon::proxy_for(url, settings)) {
            fuzz::require(!route->host.empty() && !route->port.empty(), "a proxy host and port");
            for (unsigned char c : route->host + route->port)
                fuzz::require(c > 0x20 && c < 0x7f, "no control characters in a proxy address");
            for (unsigned char c : route->authorization)
                fuzz::require(c >= 0x20 && c < 0x7f, "no control characters in a header");
        }
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
