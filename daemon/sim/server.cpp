// The simulator's Beast server: accept loop, one coroutine per connection, and the transport
// side of each answer (delay, reset, hold, truncate). What to answer is SimState's business.
#include "daemon/sim/server.hpp"
#include "daemon/logfmt.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>
#include <unordered_set>

#include "daemon/sim/state.hpp"

namespace imgbatch::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr auto kIdleTimeout = std::chrono::minutes(10);  // a silent keep-alive client
constexpr auto kHoldTime = std::chrono::seconds(120);    // #fail=timeout

struct Session {
    beast::tcp_stream stream;
    asio::steady_timer timer;
    beast::flat_buffer buffer;
    explicit Session(tcp::socket socket)
        : stream(std::move(socket)), timer(stream.get_executor()) {}
};

tcp::endpoint parse_listen(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos)
        throw std::invalid_argument("listen is not ADDR:PORT: " + listen);
    std::string host = listen.substr(0, colon);
    std::string port = listen.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host == "localhost") host = "127.0.0.1";
    if (host.empty() || host == "*") host = "0.0.0.0";
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    unsigned long p = 0;
    try {
        std::size_t used = 0;
        p = std::stoul(port, &used);
        if (used != port.size() || p > 65535) ec = asio::error::invalid_argument;
    } catch (const std::exception&) {
        ec = asio::error::invalid_argument;
    }
    if (ec) throw std::invalid_argument("listen is not ADDR:PORT: " + listen);
    return {address, static_cast<unsigned short>(p)};
}

}  // namespace

struct SimServer::Impl {
    asio::any_io_executor executor;
    tcp::acceptor acceptor;
    SimState state;
    std::unordered_set<Session*> sessions;
    bool stopped = false;
    unsigned short port = 0;

    Impl(asio::any_io_executor ex, const SimOptions& options)
        : executor(ex), acceptor(ex), state(options) {
        tcp::endpoint endpoint = parse_listen(options.listen);
        boost::system::error_code ec;
        acceptor.open(endpoint.protocol(), ec);
        if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor.bind(endpoint, ec);
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            throw std::runtime_error("cannot listen on " + options.listen + ": " + ec.message());
        port = acceptor.local_endpoint().port();
        state.set_port(port);
    }

    void stop() {
        stopped = true;
        boost::system::error_code ec;
        acceptor.close(ec);
        for (Session* s : sessions) {
            s->timer.cancel();
            s->stream.socket().close(ec);
        }
    }
};

namespace {

using Impl = SimServer::Impl;

// Carries out one answer; false when the connection must end.
asio::awaitable<bool> carry_out(std::shared_ptr<Impl> impl, std::shared_ptr<Session> s,
                                const SimAnswer* answer, bool keep_alive, unsigned version) {
    using namespace asio::experimental::awaitable_operators;
    if (answer->delay_ms > 0) {  // latency without blocking the thread
        s->timer.expires_after(std::chrono::milliseconds(answer->delay_ms));
        co_await s->timer.async_wait(tuple_awaitable);
        if (impl->stopped) co_return false;
    }
    boost::system::error_code ec;
    switch (answer->action) {
        case SimAnswer::Action::reset:
            // Linger 0: the peer sees a reset, not an orderly close.
            s->stream.socket().set_option(asio::socket_base::linger(true, 0), ec);
            s->stream.socket().close(ec);
            co_return false;
        case SimAnswer::Action::hold:
            s->stream.expires_never();
            s->timer.expires_after(kHoldTime);
            // Until the client gives up (the socket turns readable at its close) or time passes.
            co_await (s->timer.async_wait(tuple_awaitable) ||
                      s->stream.socket().async_wait(tcp::socket::wait_read, tuple_awaitable));
            co_return false;
        case SimAnswer::Action::truncate: {
            std::string raw =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                std::to_string(answer->body.size() + 1000) + "\r\nConnection: close\r\n\r\n" +
                answer->body.substr(0, answer->body.size() / 2);
            s->stream.expires_after(std::chrono::seconds(60));
            co_await asio::async_write(s->stream, asio::buffer(raw), tuple_awaitable);
            s->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
            co_return false;
        }
        case SimAnswer::Action::close:
            s->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
            co_return false;
        case SimAnswer::Action::respond:
            break;
    }
    if (!answer->interim.empty()) {  // 1xx heads first, as a CDN or a proxy may send them
        s->stream.expires_after(std::chrono::seconds(60));
        auto [iec, iw] =
            co_await asio::async_write(s->stream, asio::buffer(answer->interim), tuple_awaitable);
        (void)iw;
        if (iec) co_return false;
    }
    http::response<http::string_body> res{static_cast<http::status>(answer->status), version};
    res.set(http::field::server, "imgbatch-sim");
    for (const auto& [name, value] : answer->headers) res.set(name, value);
    res.keep_alive(keep_alive);
    res.body() = answer->body;
    res.prepare_payload();
    s->stream.expires_after(std::chrono::seconds(60));
    if (answer->close_after) {
        // It says keep-alive, then the server closes the idle connection (its keep-alive
        // timeout). Corked, the answer's last bytes and the FIN leave in one segment, as when a
        // server's idle timer fires long before the client's next request: the client sees the
        // close before it could reuse the connection, whatever the threads' timing.
        const int on = 1;
        ::setsockopt(s->stream.socket().native_handle(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    }
    auto [wec, written] = co_await http::async_write(s->stream, res, tuple_awaitable);
    (void)written;
    if (answer->close_after) {
        s->stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        co_return false;
    }
    co_return !wec && keep_alive;
}

asio::awaitable<void> serve(std::shared_ptr<Impl> impl, tcp::socket socket) {
    auto s = std::make_shared<Session>(std::move(socket));
    impl->sessions.insert(s.get());
    impl->state.connection_opened();
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(64u << 20);
        s->stream.expires_after(kIdleTimeout);
        auto [ec, n] = co_await http::async_read(s->stream, s->buffer, parser, tuple_awaitable);
        (void)n;
        if (ec) {
            if (!impl->stopped && parser.got_some() && ec != asio::error::eof &&
                ec != beast::error::timeout) {
                http::response<http::string_body> bad{http::status::bad_request, 11};
                bad.set(http::field::content_type, "text/plain");
                bad.body() = "Bad Request: " + ec.message();
                bad.keep_alive(false);
                bad.prepare_payload();
                co_await http::async_write(s->stream, bad, tuple_awaitable);
            }
            break;
        }
        auto& req = parser.get();
        SimRequest request;
        request.method = std::string(req.method_string());
        request.target = std::string(req.target());
        request.host = std::string(req[http::field::host]);
        request.authorization = std::string(req[http::field::authorization]);
        request.goog_api_key = std::string(req["x-goog-api-key"]);
        request.goog_upload = std::string(req["x-goog-upload-command"]);
        request.body = std::move(req.body());
        const auto start = std::chrono::steady_clock::now();
        const SimAnswer answer = impl->state.handle(request);
        bool alive = co_await carry_out(impl, s, &answer, req.keep_alive(), req.version());
        impl->state.finished(answer);
        if (spdlog::should_log(spdlog::level::debug)) {
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
            spdlog::debug("sim request method={} path={} status={} action={} ms={}", request.method,
                          q(request.target.substr(0, request.target.find('?'))), answer.status,
                          static_cast<int>(answer.action), ms);
        }
        if (!alive || impl->stopped) break;
    }
    impl->sessions.erase(s.get());
    boost::system::error_code ignored;
    s->stream.socket().close(ignored);
}

asio::awaitable<void> accept_loop(std::shared_ptr<Impl> impl) {
    asio::steady_timer backoff(impl->executor);
    for (;;) {
        auto [ec, socket] = co_await impl->acceptor.async_accept(tuple_awaitable);
        if (impl->stopped || ec == asio::error::operation_aborted) co_return;
        if (ec) {  // e.g. out of file descriptors: try again shortly
            spdlog::warn("sim accept: {}", ec.message());
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(tuple_awaitable);
            continue;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        asio::co_spawn(impl->executor, serve(impl, std::move(socket)), asio::detached);
    }
}

void stop_impl(const std::shared_ptr<Impl>& impl) {
    impl->stop();
}

}  // namespace

SimServer::SimServer(asio::any_io_executor executor, SimOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), options)) {}

SimServer::~SimServer() = default;

unsigned short SimServer::port() const {
    return impl_->port;
}

void SimServer::start() {
    asio::co_spawn(impl_->executor, accept_loop(impl_), asio::detached);
}

void SimServer::stop() {
    auto impl = impl_;
    asio::post(impl->executor, [impl] { stop_impl(impl); });
}

std::string SimServer::stats_json() const {
    return impl_->state.stats_json();
}

}  // namespace imgbatch::daemon
