// HttpClient over HTTPS against an in-process TLS server with a certificate made at test time:
// a verified exchange with keep-alive reuse, SNI, certificate and host-name failures, and the
// connect deadline covering the TLS handshake. The client runs on the test thread.
#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include "daemon/net/http_client.hpp"
#include "tests/daemon/tls_fixture.hpp"

using namespace imgbatch::daemon;
using imgbatch::jobs::ErrorClass;
using imgbatch::test::TestCert;
using imgbatch::test::TlsServer;
namespace asio = boost::asio;

namespace {

// Runs one request to completion. run_for bounds the test if the client never finishes
// (the REQUIRE then fails instead of the test hanging).
HttpResult send_get(HttpClient& client, asio::io_context& ioc, const std::string& url) {
    HttpRequest request;
    request.method = "GET";
    request.url = url;
    std::optional<HttpResult> out;
    asio::co_spawn(ioc, client.send(std::move(request)), [&](std::exception_ptr e, HttpResult r) {
        if (e) std::rethrow_exception(e);
        out = std::move(r);
    });
    ioc.restart();
    ioc.run_for(std::chrono::seconds(10));
    REQUIRE(out.has_value());
    return std::move(*out);
}

HttpClientOptions options(const std::string& ca_file) {
    HttpClientOptions o;
    o.use_env_proxy = false;
    o.ca_file = ca_file;
    o.connect_timeout = std::chrono::seconds(5);
    o.response_timeout = std::chrono::seconds(5);
    return o;
}

std::string url(const std::string& host, const TlsServer& server, const std::string& path) {
    return "https://" + host + ":" + std::to_string(server.port()) + path;
}

const HttpResponse& response_of(const HttpResult& result) {
    if (const auto* failure = std::get_if<HttpFailure>(&result)) FAIL(failure->message);
    return std::get<HttpResponse>(result);
}

const HttpFailure& failure_of(const HttpResult& result) {
    REQUIRE(std::holds_alternative<HttpFailure>(result));
    return std::get<HttpFailure>(result);
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("https: a verified exchange by host name, then one more on the same connection") {
    TestCert cert("localhost", "DNS:localhost,IP:127.0.0.1");
    TlsServer server(cert, TlsServer::Mode::respond);
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), options(cert.cert_file()));

    const auto first = send_get(client, ioc, url("localhost", server, "/x"));
    CHECK(response_of(first).status == 200);
    CHECK(response_of(first).body == "hello /x");

    const auto second = send_get(client, ioc, url("localhost", server, "/y"));
    CHECK(response_of(second).status == 200);
    CHECK(response_of(second).body == "hello /y");
    CHECK(server.accepted() == 1);
    CHECK(server.handshakes() == 1);
}

TEST_CASE("https: an IP address URL is verified against the IP SAN and sends no SNI") {
    TestCert cert("localhost", "DNS:localhost,IP:127.0.0.1");
    TlsServer server(cert, TlsServer::Mode::respond);
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), options(cert.cert_file()));

    const auto result = send_get(client, ioc, url("127.0.0.1", server, "/ip"));
    CHECK(response_of(result).status == 200);
    CHECK(response_of(result).body == "hello /ip");
    const auto names = server.server_names();
    REQUIRE(names.size() == 1);
    CHECK(names[0] == "");  // RFC 6066: SNI never carries an IP literal
}

TEST_CASE("https: the client sends the URL's host name as SNI") {
    TestCert cert("localhost", "DNS:localhost,IP:127.0.0.1");
    TlsServer server(cert, TlsServer::Mode::respond);
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), options(cert.cert_file()));

    CHECK(response_of(send_get(client, ioc, url("localhost", server, "/"))).status == 200);
    const auto names = server.server_names();
    REQUIRE(names.size() == 1);
    CHECK(names[0] == "localhost");
}

TEST_CASE("https: a certificate the client does not trust fails as auth, naming the issuer") {
    TestCert cert("localhost", "DNS:localhost,IP:127.0.0.1");
    TlsServer server(cert, TlsServer::Mode::respond);
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), options(""));  // system store only

    const auto result = send_get(client, ioc, url("localhost", server, "/x"));
    const auto& failure = failure_of(result);
    // It will not fix itself: the provider is paused like for a bad key.
    CHECK(failure.cls == ErrorClass::auth);
    CHECK(failure.code == "tls_certificate");
    CHECK(contains(failure.message, "TLS certificate of localhost:"));
    CHECK(contains(failure.message, "issuer is not trusted"));
    CHECK(server.handshakes() == 0);
}

TEST_CASE("https: a trusted certificate for another host name fails as auth, naming the name") {
    TestCert cert("other.example", "DNS:other.example");
    TlsServer server(cert, TlsServer::Mode::respond);
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), options(cert.cert_file()));

    const auto result = send_get(client, ioc, url("localhost", server, "/x"));
    const auto& failure = failure_of(result);
    CHECK(failure.cls == ErrorClass::auth);
    CHECK(failure.code == "tls_certificate");
    CHECK(contains(failure.message, "does not match the host name localhost"));
    CHECK(server.handshakes() == 0);

    // An IP address URL is checked against the IP entries.
    const auto by_ip = send_get(client, ioc, url("127.0.0.1", server, "/x"));
    CHECK(failure_of(by_ip).cls == ErrorClass::auth);
    CHECK(contains(failure_of(by_ip).message, "does not match the host name 127.0.0.1"));
}

TEST_CASE("https: an expired certificate fails as auth and says so") {
    TestCert cert("localhost", "DNS:localhost,IP:127.0.0.1", -48 * 3600, -24 * 3600);
    TlsServer server(cert, TlsServer::Mode::respond);
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), options(cert.cert_file()));

    const auto result = send_get(client, ioc, url("localhost", server, "/x"));
    const auto& failure = failure_of(result);
    CHECK(failure.cls == ErrorClass::auth);
    CHECK(failure.code == "tls_certificate");
    CHECK(contains(failure.message, "expired"));
}

TEST_CASE("https: the connect deadline covers a handshake the server never answers") {
    TestCert cert("localhost", "DNS:localhost,IP:127.0.0.1");
    TlsServer server(cert, TlsServer::Mode::silent);
    asio::io_context ioc;
    auto o = options(cert.cert_file());
    o.connect_timeout = std::chrono::milliseconds(300);
    HttpClient client(ioc.get_executor(), o);

    const auto result = send_get(client, ioc, url("localhost", server, "/x"));
    const auto& failure = failure_of(result);
    CHECK(failure.cls == ErrorClass::timeout);
    CHECK(contains(failure.message, "connect deadline"));
    CHECK(server.accepted() == 1);  // TCP got through: it was the handshake that timed out
}
