// HttpClient against an in-process SimServer (its own thread) and tiny hand-written servers
// for stale keep-alive and proxy cases. The client runs on the test thread's io_context.
#include <doctest/doctest.h>

#include <unistd.h>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daemon/net/content_coding.hpp"
#include "daemon/net/http_client.hpp"
#include "daemon/sim/server.hpp"
#include "tests/daemon/sim_thread.hpp"

using namespace imgbatch::daemon;
using imgbatch::daemon::testing::SimThread;
using imgbatch::jobs::ErrorClass;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// A blocking one-thread server: for each accepted connection, `serve` reads what it wants and
// answers. Used where the sim cannot misbehave the right way (stale keep-alive, proxies).
class TinyServer {
  public:
    using Handler = std::function<void(tcp::socket&, int connection)>;
    TinyServer(int connections, Handler serve)
        : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        thread_ = std::thread([this, connections, serve] {
            for (int i = 0; i < connections; ++i) {
                tcp::socket socket(ioc_);
                boost::system::error_code ec;
                acceptor_.accept(socket, ec);
                if (ec) return;
                serve(socket, i);
            }
        });
    }
    ~TinyServer() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        thread_.join();
    }
    int port() const { return acceptor_.local_endpoint().port(); }

  private:
    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::thread thread_;
};

// Reads one request head (no body expected).
std::string read_head(tcp::socket& socket, asio::streambuf& buf) {
    boost::system::error_code ec;
    auto n = asio::read_until(socket, buf, "\r\n\r\n", ec);
    if (ec) return {};
    std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + n);
    buf.consume(n);
    return head;
}

void write_all(tcp::socket& socket, const std::string& text) {
    boost::system::error_code ec;
    asio::write(socket, asio::buffer(text), ec);
}

// Closes in order: FIN, no reset.
void close_with_fin(tcp::socket& socket) {
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

std::string local_url(int port, const std::string& path = "/") {
    return "http://127.0.0.1:" + std::to_string(port) + path;
}

// A server with one thread per accepted connection, so that several connections can be open
// at once (kept-alive connections that are closed later). Stops accepting after `connections`.
class ThreadedServer {
  public:
    using Handler = std::function<void(tcp::socket&, int connection)>;
    ThreadedServer(int connections, Handler serve)
        : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        thread_ = std::thread([this, connections, serve] {
            for (int i = 0; i < connections; ++i) {
                auto socket = std::make_shared<tcp::socket>(ioc_);
                boost::system::error_code ec;
                acceptor_.accept(*socket, ec);
                if (ec) return;
                ++accepted_;
                workers_.emplace_back([socket, serve, i] { serve(*socket, i); });
            }
        });
    }
    ~ThreadedServer() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        thread_.join();
        for (auto& w : workers_) w.join();
    }
    int port() const { return acceptor_.local_endpoint().port(); }
    int accepted() const { return accepted_; }

  private:
    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::atomic<int> accepted_{0};
    std::vector<std::thread> workers_;
    std::thread thread_;
};

std::string answer(const std::string& body, const std::string& extra_headers = "") {
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
           extra_headers + "\r\n" + body;
}

HttpResult send(HttpClient& client, asio::io_context& ioc, HttpRequest request) {
    std::optional<HttpResult> out;
    asio::co_spawn(ioc, client.send(std::move(request)), [&](std::exception_ptr e, HttpResult r) {
        if (e) std::rethrow_exception(e);
        out = std::move(r);
    });
    ioc.restart();
    ioc.run();
    REQUIRE(out.has_value());
    return std::move(*out);
}

HttpRequest post(const std::string& url, const std::string& prompt) {
    HttpRequest r;
    r.url = url;
    r.headers = {{"Content-Type", "application/json"}};
    r.body = R"({"model":"gpt-image-2","prompt":")" + prompt + R"(","n":1})";
    return r;
}

HttpRequest get(const std::string& url) {
    HttpRequest r;
    r.method = "GET";
    r.url = url;
    return r;
}

HttpClientOptions no_env() {
    HttpClientOptions o;
    o.proxy = ProxySettings{};
    return o;
}

HttpResponse ok(HttpResult r) {
    if (auto* f = std::get_if<HttpFailure>(&r)) FAIL("failure: " << f->message);
    return std::get<HttpResponse>(std::move(r));
}

HttpFailure failed(HttpResult r) {
    if (auto* res = std::get_if<HttpResponse>(&r)) FAIL("answered " << res->status);
    return std::get<HttpFailure>(std::move(r));
}

boost::json::object stats(HttpClient& client, asio::io_context& ioc, const SimThread& sim) {
    return boost::json::parse(ok(send(client, ioc, get(sim.url("/sim/stats")))).body).as_object();
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("http client: answers and keep-alive reuse of one connection") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    for (int i = 0; i < 3; ++i) {
        const auto res = ok(send(client, ioc, post(sim.url("/v1/images/generations"), "fox")));
        CHECK(res.status == 200);
        CHECK(res.header("content-type") == "application/json");
        CHECK(contains(res.body, "b64_json"));
    }
    auto s = stats(client, ioc, sim);
    CHECK(s.at("connections").as_int64() == 1);
    CHECK(s.at("requests").as_int64() == 3);

    client.close_idle();
    ok(send(client, ioc, get(sim.url("/sim/stats"))));
    CHECK(stats(client, ioc, sim).at("connections").as_int64() == 2);
}

TEST_CASE("http client: error statuses are answers, not failures") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    const auto res = ok(send(client, ioc, post(sim.url("/v1/images/generations"), "x #fail=429")));
    CHECK(res.status == 429);
    CHECK(res.header("retry-after") == "1");
}

TEST_CASE("http client: response deadline gives a timeout failure") {
    SimThread sim;
    asio::io_context ioc;
    auto opt = no_env();
    opt.response_timeout = std::chrono::milliseconds(200);
    HttpClient client(ioc.get_executor(), opt);
    const auto f =
        failed(send(client, ioc, post(sim.url("/v1/images/generations"), "#fail=timeout")));
    CHECK(f.cls == ErrorClass::timeout);
    CHECK(f.message == "response deadline of 0.2 s passed");
}

TEST_CASE("http client: reset, truncated body and refused connection are network failures") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    const auto reset =
        failed(send(client, ioc, post(sim.url("/v1/images/generations"), "#fail=reset")));
    CHECK(reset.cls == ErrorClass::network);
    CHECK(contains(reset.message, "127.0.0.1:" + std::to_string(sim.port())));

    const auto cut =
        failed(send(client, ioc, post(sim.url("/v1/images/generations"), "#fail=truncated")));
    CHECK(cut.cls == ErrorClass::network);
    CHECK(contains(cut.message, "closed before the end of the answer"));

    int closed_port = 0;
    {
        asio::io_context tmp;
        tcp::acceptor a(tmp, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        closed_port = a.local_endpoint().port();
    }
    const auto refused = failed(send(client, ioc, get(local_url(closed_port))));
    CHECK(refused.cls == ErrorClass::network);
    CHECK(contains(refused.message, "connect to 127.0.0.1:" + std::to_string(closed_port)));
}

TEST_CASE("http client: a body over max_response_bytes fails the request, not retried") {
    SimThread sim;
    asio::io_context ioc;
    auto opt = no_env();
    opt.max_response_bytes = 100;
    HttpClient client(ioc.get_executor(), opt);
    const auto f = failed(send(client, ioc, post(sim.url("/v1/images/generations"), "fox")));
    // It will not shrink on a retry: a class that fails the request at once.
    CHECK(f.cls == ErrorClass::invalid_request);
    CHECK(f.code == "response_too_large");
    CHECK(contains(f.message, "larger than max_response_bytes (100 bytes)"));
}

TEST_CASE("http client: interim 1xx answers are skipped until the final answer") {
    std::vector<std::string> heads;
    TinyServer server(1, [&](tcp::socket& socket, int) {
        asio::streambuf buf;
        heads.push_back(read_head(socket, buf));
        write_all(socket,
                  "HTTP/1.1 100 Continue\r\n\r\n"
                  "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
                      answer("first"));
        heads.push_back(read_head(socket, buf));
        write_all(socket, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + answer("second"));
    });
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    std::string url = local_url(server.port(), "/a");
    const auto first = ok(send(client, ioc, get(url)));
    CHECK(first.status == 200);
    CHECK(first.body == "first");
    const auto second = ok(send(client, ioc, get(url)));  // the same connection, in step
    CHECK(second.status == 200);
    CHECK(second.body == "second");
    CHECK(heads.size() == 2);
}

TEST_CASE("http client: the sim's #fail=interim answers are read whole, each its own") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    for (const std::string prompt : {"a cat #fail=interim", "a dog #fail=interim", "an owl"}) {
        const auto res = ok(send(client, ioc, post(sim.url("/v1/images/generations"), prompt)));
        CHECK(res.status == 200);
        CHECK(contains(res.body, prompt + " (revised)"));
    }
    CHECK(stats(client, ioc, sim).at("connections").as_int64() == 1);
}

TEST_CASE("http client: a connection with bytes after the answer is not used again") {
    TinyServer server(2, [&](tcp::socket& socket, int connection) {
        asio::streambuf buf;
        read_head(socket, buf);
        if (connection == 0) {
            // An answer followed by a second, unasked one: the connection is out of step.
            write_all(socket, answer("ok") + answer("stale"));
            read_head(socket, buf);  // until the client closes it
        } else {
            write_all(socket, answer("fresh"));
        }
    });
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    std::string url = local_url(server.port(), "/a");
    CHECK(ok(send(client, ioc, get(url))).body == "ok");
    CHECK(ok(send(client, ioc, get(url))).body == "fresh");
}

TEST_CASE("http client: a stale kept-alive connection is retried on a new connection") {
    // Connections 0 and 1 answer once, then close without answering the next request (the
    // keep-alive race: the server dropped the idle connection as the request went out).
    ThreadedServer server(3, [](tcp::socket& socket, int connection) {
        asio::streambuf buf;
        read_head(socket, buf);
        if (connection == 2) {
            write_all(socket, answer("fresh"));
            read_head(socket, buf);
            return;
        }
        write_all(socket, answer("first"));
        read_head(socket, buf);
        close_with_fin(socket);
    });
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    std::string url = local_url(server.port(), "/a");
    // Two requests at once: two connections, both kept alive afterwards.
    std::vector<HttpResult> results;
    for (int i = 0; i < 2; ++i)
        asio::co_spawn(ioc, client.send(get(url)), [&](std::exception_ptr e, HttpResult r) {
            if (e) std::rethrow_exception(e);
            results.push_back(std::move(r));
        });
    ioc.run();
    REQUIRE(results.size() == 2);
    for (auto& r : results) CHECK(ok(std::move(r)).body == "first");
    // The next request finds its pooled connection closed: the one retry must not take the
    // other pooled connection (stale too) but open a new one.
    CHECK(ok(send(client, ioc, get(url))).body == "fresh");
    CHECK(server.accepted() == 3);
}

// Reads a request's head and its Content-Length body.
void read_request(tcp::socket& socket, asio::streambuf& buf) {
    std::string head = read_head(socket, buf);
    auto at = head.find("Content-Length: ");
    if (at == std::string::npos) return;
    std::size_t length = std::stoul(head.substr(at + 16));
    boost::system::error_code ec;
    if (buf.size() < length)
        asio::read(socket, buf, asio::transfer_exactly(length - buf.size()), ec);
    buf.consume(length);
}

namespace {

// The server side of one exchange: reads a request whole, counts it, answers body.
void serve_one(tcp::socket& socket, asio::streambuf& buf, std::atomic<int>& served,
               const std::string& body) {
    read_request(socket, buf);
    ++served;
    write_all(socket, answer(body));
}

// Two POSTs on one kept-alive connection to a server whose serve answers the first with
// "first" and drops the second: returns the second's failure. A resend would go to a
// connection nobody serves: it would time out (5 s), not hang the test.
HttpFailure second_post_failure(const ThreadedServer& server) {
    asio::io_context ioc;
    auto opt = no_env();
    opt.response_timeout = std::chrono::seconds(5);
    HttpClient client(ioc.get_executor(), opt);
    std::string url = local_url(server.port(), "/v1/images");
    CHECK(ok(send(client, ioc, post(url, "one"))).body == "first");
    return failed(send(client, ioc, post(url, "two")));
}

}  // namespace

TEST_CASE("http client: a POST reset after it was sent is not sent again") {
    // The server dropped the kept-alive connection with the request in its buffer: a reset.
    // Whether it was processed cannot be known (a proxy may reset after forwarding it), so the
    // client does not resend it: a network failure that may have been billed.
    std::atomic<int> served{0};
    ThreadedServer server(1, [&](tcp::socket& socket, int) {
        asio::streambuf buf;
        serve_one(socket, buf, served, "first");
        boost::system::error_code ec;
        while (socket.available(ec) == 0 && !ec)  // the next request is there, unread
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        socket.set_option(tcp::socket::linger(true, 0), ec);  // close with a reset
        socket.close(ec);
    });
    const auto f = second_post_failure(server);
    CHECK(f.cls == ErrorClass::network);
    CHECK(f.code == "after_send");
    CHECK(server.accepted() == 1);
    CHECK(served == 1);
}

TEST_CASE("http client: a POST read whole and then dropped without an answer is not resent") {
    // The server read the second request whole and closed the connection cleanly (FIN) without
    // answering: it may have done and billed the work. One send, one network failure.
    std::atomic<int> served{0};
    ThreadedServer server(1, [&](tcp::socket& socket, int) {
        asio::streambuf buf;
        serve_one(socket, buf, served, "first");
        read_request(socket, buf);
        ++served;
        close_with_fin(socket);
    });
    const auto f = second_post_failure(server);
    CHECK(f.cls == ErrorClass::network);
    CHECK(f.code == "after_send");
    CHECK(contains(f.message, "closed the connection without an answer"));
    CHECK(served == 2);
    CHECK(server.accepted() == 1);
}

TEST_CASE("http client: a pooled connection the server closed while idle is not reused") {
    // The server's keep-alive timeout: it answers, then closes the idle connection. The next
    // POST sees the close before writing and goes out on a new connection, once, no error.
    std::atomic<int> served{0};
    std::atomic<bool> closed{false};
    ThreadedServer server(2, [&](tcp::socket& socket, int connection) {
        asio::streambuf buf;
        serve_one(socket, buf, served, connection == 1 ? "fresh" : "first");
        if (connection == 1) {
            read_head(socket, buf);
            return;
        }
        close_with_fin(socket);
        closed = true;
    });
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    std::string url = local_url(server.port(), "/v1/images");
    CHECK(ok(send(client, ioc, post(url, "one"))).body == "first");
    while (!closed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(ok(send(client, ioc, post(url, "two"))).body == "fresh");
    CHECK(served == 2);
    CHECK(server.accepted() == 2);
}

TEST_CASE("http client: a connection closed without any answer is a network failure") {
    TinyServer server(1, [](tcp::socket& socket, int) {
        asio::streambuf buf;
        read_head(socket, buf);
        boost::system::error_code ec;
        socket.shutdown(tcp::socket::shutdown_both, ec);
    });
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    const auto f = failed(send(client, ioc, get(local_url(server.port()))));
    CHECK(f.cls == ErrorClass::network);
    CHECK(contains(f.message, "closed the connection without an answer"));
}

TEST_CASE("http client: the sim's #fail=close is a network failure") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    const auto f =
        failed(send(client, ioc, post(sim.url("/v1/images/generations"), "x #fail=close")));
    CHECK(f.cls == ErrorClass::network);
    CHECK(contains(f.message, "closed the connection without an answer"));
}

TEST_CASE("http client: gzip and deflate answers are decoded") {
    const std::string text(5000, 'x');
    for (const std::string coding : {"gzip", "deflate", "raw-deflate", "x-gzip"}) {
        INFO(coding);
        std::string wire = coding == "deflate"       ? deflate_compress(text, false)
                           : coding == "raw-deflate" ? deflate_compress(text, true)
                                                     : gzip_compress(text);
        std::string header = coding == "raw-deflate" ? "deflate" : coding;
        std::string head;
        TinyServer server(1, [&](tcp::socket& socket, int) {
            asio::streambuf buf;
            head = read_head(socket, buf);
            write_all(socket, answer(wire, "Content-Encoding: " + header + "\r\n"));
        });
        asio::io_context ioc;
        HttpClient client(ioc.get_executor(), no_env());
        const auto res = ok(send(client, ioc, get(local_url(server.port()))));
        CHECK(res.body == text);
        CHECK(res.header("content-encoding").empty());
        CHECK(contains(head, "Accept-Encoding: gzip, deflate"));
    }
}

TEST_CASE("http client: a compressed answer over max_response_bytes or corrupt fails cleanly") {
    const std::string bomb = gzip_compress(std::string(1 << 20, '\0'));  // 1 MiB in ~1 KiB
    std::string corrupt = gzip_compress("hello world, hello world");
    corrupt[corrupt.size() / 2] ^= 0x55;
    for (const std::string* body : std::initializer_list<const std::string*>{&bomb, &corrupt}) {
        TinyServer server(1, [&](tcp::socket& socket, int) {
            asio::streambuf buf;
            read_head(socket, buf);
            write_all(socket, answer(*body, "Content-Encoding: gzip\r\n"));
        });
        asio::io_context ioc;
        auto opt = no_env();
        opt.max_response_bytes = 64 * 1024;
        HttpClient client(ioc.get_executor(), opt);
        const auto f = failed(send(client, ioc, get(local_url(server.port(), ""))));
        if (body == &bomb) {
            CHECK(f.cls == ErrorClass::invalid_request);
            CHECK(f.code == "response_too_large");
        } else {
            CHECK(f.cls == ErrorClass::bad_response);
            CHECK(f.code == "bad_encoding");
        }
    }
}

TEST_CASE("http client: the sim's #fail=gzip answer arrives decoded") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    const auto res =
        ok(send(client, ioc, post(sim.url("/v1/images/generations"), "fox #fail=gzip")));
    CHECK(res.status == 200);
    CHECK(contains(res.body, "b64_json"));
}

TEST_CASE("http client: a deferred-decoding request gets the coded body, decoded later") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    auto request = post(sim.url("/v1/images/generations"), "fox #fail=gzip");
    request.defer_decoding = true;
    auto res = ok(send(client, ioc, std::move(request)));
    CHECK(res.header("content-encoding") == "gzip");
    CHECK_FALSE(contains(res.body, "b64_json"));
    auto failure = decode_content(res, 1 << 20);
    CHECK_FALSE(failure.has_value());
    CHECK(res.header("content-encoding").empty());
    CHECK(contains(res.body, "b64_json"));
}

TEST_CASE("http client: a kept-alive connection closed by the server is retried once") {
    std::string second_head;
    TinyServer server(2, [&](tcp::socket& socket, int connection) {
        asio::streambuf buf;
        std::string head = read_head(socket, buf);
        if (connection == 1) second_head = head;
        // The first connection promises keep-alive, then closes after its one answer.
        write_all(socket, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    std::string url = local_url(server.port(), "/a");
    CHECK(ok(send(client, ioc, get(url))).body == "ok");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the close arrive
    CHECK(ok(send(client, ioc, get(url))).body == "ok");
    CHECK(contains(second_head, "GET /a HTTP/1.1"));
    CHECK(contains(second_head, "User-Agent: imgbatch/0.1"));
}

TEST_CASE("http client: plain HTTP through a proxy uses the absolute-form target") {
    SimThread sim;
    asio::io_context ioc;
    auto opt = no_env();
    opt.proxy->http_proxy = "http://127.0.0.1:" + std::to_string(sim.port());
    HttpClient client(ioc.get_executor(), opt);
    // The sim plays the proxy: it answers absolute-form targets itself.
    const auto res =
        ok(send(client, ioc, post("http://images.invalid/v1/images/generations", "fox #url")));
    CHECK(res.status == 200);
    CHECK(contains(res.body, "http://images.invalid/sim/files/"));
}

TEST_CASE("http client: HTTPS through a proxy opens a CONNECT tunnel with credentials") {
    std::string head;
    TinyServer proxy(1, [&](tcp::socket& socket, int) {
        asio::streambuf buf;
        head = read_head(socket, buf);
        write_all(socket,
                  "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
    });
    asio::io_context ioc;
    auto opt = no_env();
    opt.proxy->https_proxy = "http://u%40x:p@127.0.0.1:" + std::to_string(proxy.port());
    HttpClient client(ioc.get_executor(), opt);
    const auto f = failed(send(client, ioc, get("https://images.test/v1/x")));
    CHECK(f.cls == ErrorClass::network);
    CHECK(contains(f.message, "407"));
    CHECK(head.starts_with("CONNECT images.test:443 HTTP/1.1\r\n"));
    CHECK(contains(head, "Proxy-Authorization: Basic dUB4OnA="));  // base64("u@x:p")
}

TEST_CASE("http client: a TLS handshake with a plain HTTP server fails as network") {
    SimThread sim;
    asio::io_context ioc;
    HttpClient client(ioc.get_executor(), no_env());
    const auto f =
        failed(send(client, ioc, get("https://127.0.0.1:" + std::to_string(sim.port()) + "/")));
    CHECK(f.cls == ErrorClass::network);
    CHECK(contains(f.message, "TLS handshake with 127.0.0.1:"));
}

TEST_CASE("proxy: NO_PROXY matching rules") {
    CHECK(no_proxy_matches("api.example.com", "443", "example.com"));
    CHECK(no_proxy_matches("api.example.com", "443", ".example.com"));
    CHECK(no_proxy_matches("example.com", "443", ".example.com"));
    CHECK(no_proxy_matches("EXAMPLE.com", "443", "example.COM"));
    CHECK_FALSE(no_proxy_matches("badexample.com", "443", "example.com"));
    CHECK_FALSE(no_proxy_matches("example.org", "443", "example.com"));
    CHECK(no_proxy_matches("anything", "80", "*"));
    CHECK(no_proxy_matches("b.test", "443", "a.test, b.test ,c.test"));
    CHECK(no_proxy_matches("a.test", "8443", "a.test:8443"));
    CHECK_FALSE(no_proxy_matches("a.test", "443", "a.test:8443"));
    CHECK(no_proxy_matches("10.0.0.5", "443", "10.0.0.5"));
    CHECK_FALSE(no_proxy_matches("a.test", "443", ""));
}

TEST_CASE("proxy: choice by scheme, NO_PROXY and loopback") {
    ProxySettings s{"http://hp:3128", "http://user:pass@sp:8080", "internal.test"};
    Url url;
    REQUIRE(parse_url("https://api.openai.com/v1/images", url));
    auto route = proxy_for(url, s);
    REQUIRE(route);
    CHECK(route->host == "sp");
    CHECK(route->port == "8080");
    CHECK(route->authorization == "Basic dXNlcjpwYXNz");

    REQUIRE(parse_url("http://relay.test/v1", url));
    route = proxy_for(url, s);
    REQUIRE(route);
    CHECK(route->host == "hp");
    CHECK(route->authorization.empty());

    REQUIRE(parse_url("https://x.internal.test/v1", url));
    CHECK_FALSE(proxy_for(url, s));
    for (const char* loop : {"http://localhost:8089/", "http://127.0.0.5/", "http://[::1]:80/"}) {
        REQUIRE(parse_url(loop, url));
        CHECK_FALSE(proxy_for(url, s));
    }
    CHECK(is_loopback_host("127.0.0.1"));
    CHECK_FALSE(is_loopback_host("127.example.com"));
    REQUIRE(parse_url("https://api.openai.com/", url));
    CHECK_FALSE(proxy_for(url, ProxySettings{"http://hp:1", "", ""}));  // no https proxy set
    CHECK_THROWS(proxy_for(url, ProxySettings{"", "socks5://s:1080", ""}));
}

namespace {

std::string read_whole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string sink_path(const char* name) {
    return (std::filesystem::temp_directory_path() /
            (std::string("imgbatch-sink-") + std::to_string(::getpid()) + "-" + name))
        .string();
}

}  // namespace

TEST_CASE("http client: a body file takes a 2xx answer larger than max_response_bytes") {
    // Three answers on one connection (the server accepts one: the client kept it alive): 1 MiB
    // to the file, an error kept in memory, then 1 MiB over body_file_max.
    const std::string big(1 << 20, 'x');
    std::string accept_encoding;
    TinyServer server(1, [&](tcp::socket& s, int) {
        asio::streambuf buf;
        for (int i = 0; i < 3; ++i) {
            std::string head = read_head(s, buf);
            if (head.empty()) return;
            if (i == 0) accept_encoding = head;
            if (i == 1) {
                write_all(s,
                          "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                          "Content-Length: 13\r\n\r\n{\"error\":\"x\"}");
            } else {
                write_all(s, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big.size()) +
                                 "\r\n\r\n" + big);
            }
        }
    });
    asio::io_context ioc;
    auto opt = no_env();
    opt.max_response_bytes = 64 * 1024;
    HttpClient client(ioc.get_executor(), opt);
    const std::string url = local_url(server.port(), "/file");
    const std::string path = sink_path("a");
    HttpRequest r = get(url);
    r.body_file = path;
    r.body_file_max = 2 << 20;
    const auto res = ok(send(client, ioc, r));
    CHECK(res.status == 200);
    CHECK(res.body.empty());
    CHECK(read_whole(path) == big);
    CHECK(contains(accept_encoding, "Accept-Encoding: identity"));

    // Not a 2xx: the body comes in memory, the file is left alone.
    std::filesystem::remove(path);
    const auto missing = ok(send(client, ioc, r));
    CHECK(missing.status == 404);
    CHECK(missing.body == "{\"error\":\"x\"}");
    CHECK_FALSE(std::filesystem::exists(path));

    // Over body_file_max: a failure that a retry would not fix.
    r.body_file_max = 1000;
    const auto f = failed(send(client, ioc, r));
    CHECK(f.code == "response_too_large");
    std::filesystem::remove(path);
}
