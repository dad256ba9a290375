#pragma once
// The HTTP(S) client on Beast. Beast stays in http_client.cpp; this header only needs the
// awaitable type. One client per provider: it keeps that provider's keep-alive connections.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "daemon/net/http.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon {

// Proxy settings in the form of the usual environment variables.
struct ProxySettings {
    std::string http_proxy;   // HTTP_PROXY / http_proxy: for http:// URLs (absolute-form target)
    std::string https_proxy;  // HTTPS_PROXY / https_proxy: for https:// URLs (CONNECT tunnel)
    std::string no_proxy;     // NO_PROXY / no_proxy: hosts that are reached directly
    // Reads the variables (the lower-case spelling wins when both are set, as in curl).
    static ProxySettings from_env();
};

// The proxy a request goes through.
struct ProxyRoute {
    std::string host;
    std::string port;
    std::string authorization;  // "Basic ..." from user:pass in the proxy URL, else empty
};

// True for localhost, 127.0.0.0/8 and ::1: such hosts never go through a proxy.
bool is_loopback_host(std::string_view host);

// The NO_PROXY decision: no_proxy is a comma (or space) separated list of host suffixes;
// "example.com" and ".example.com" both match example.com and its subdomains, an entry may
// carry ":port" (then only that port matches), "*" matches every host. Case-insensitive.
bool no_proxy_matches(std::string_view host, std::string_view port, std::string_view no_proxy);

// The proxy for url, or nullopt for a direct connection (no proxy set for the scheme, a
// NO_PROXY match, or a loopback host). Throws std::invalid_argument on a malformed proxy URL.
std::optional<ProxyRoute> proxy_for(const Url& url, const ProxySettings& settings);

struct HttpClientOptions {
    std::chrono::milliseconds connect_timeout{30'000};    // TCP connect + TLS handshake (+ proxy)
    std::chrono::milliseconds response_timeout{300'000};  // write request .. last body byte
    std::size_t max_response_bytes = 512u << 20;
    std::size_t max_idle_connections = 16;  // kept-alive connections kept for reuse
    // Proxy: by default from HTTPS_PROXY/https_proxy (CONNECT tunnel for https targets),
    // HTTP_PROXY/http_proxy (http targets) and NO_PROXY/no_proxy. Set use_env_proxy = false
    // to ignore the environment.
    bool use_env_proxy = true;
    // When set, used instead of the environment (tests, explicit configuration).
    std::optional<ProxySettings> proxy;
    // Extra CA file for tests (PEM); the system store is always used.
    std::string ca_file;
};

using HttpResult = std::variant<HttpResponse, HttpFailure>;

class HttpClient {
  public:
    HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Sends the request, reusing an idle connection to the same host when there is one. A
    // pooled connection is checked before reuse (one the server closed, or with unasked bytes,
    // is dropped). A reused connection that fails before the request was written whole, or
    // before any byte of the answer of a GET/HEAD, is retried once on a fresh connection; a
    // failure after any other request was written is returned with code jobs::kAfterSend, never
    // resent (the server may have processed and billed it). HTTPS verifies the certificate against
    // the system store with SNI.
    boost::asio::awaitable<HttpResult> send(HttpRequest request);

    // Closes idle connections (shutdown).
    void close_idle();

  private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace imgbatch::daemon
