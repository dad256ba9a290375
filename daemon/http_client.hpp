#pragma once
// The HTTP(S) client on Beast. Beast stays in http_client.cpp; this header only needs the
// awaitable type. One client per provider: it keeps that provider's keep-alive connections.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <variant>

#include "daemon/http.hpp"
#include "jobs/error.hpp"

namespace imgbatch::daemon {

struct HttpClientOptions {
    std::chrono::milliseconds connect_timeout{30'000};  // TCP connect + TLS handshake (+ proxy)
    std::chrono::milliseconds response_timeout{300'000};  // write request .. last body byte
    std::size_t max_response_bytes = 512u << 20;
    std::size_t max_idle_connections = 16;  // kept-alive connections kept for reuse
    // Proxy: by default from HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy (CONNECT tunnel
    // for https targets). Set use_env_proxy = false to ignore the environment.
    bool use_env_proxy = true;
    // Extra CA file for tests (PEM); the system store is always used.
    std::string ca_file;
};

// A transport failure: class timeout or network, never an HTTP status.
struct HttpFailure {
    jobs::ErrorClass cls = jobs::ErrorClass::network;
    std::string message;  // e.g. "connect to api.example.com:443: Connection refused"
};

using HttpResult = std::variant<HttpResponse, HttpFailure>;

class HttpClient {
public:
    HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Sends the request, reusing an idle connection to the same host when there is one (and
    // retrying once on a fresh connection if a reused one turns out closed before any byte of
    // the answer). HTTPS verifies the certificate against the system store with SNI.
    boost::asio::awaitable<HttpResult> send(HttpRequest request);

    // Closes idle connections (shutdown).
    void close_idle();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace imgbatch::daemon
