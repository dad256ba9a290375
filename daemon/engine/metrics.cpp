#include "daemon/engine/metrics.hpp"
#include "daemon/engine/batch_runner.hpp"
#include "daemon/logfmt.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include <stdexcept>

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace imgbatch::daemon {
namespace asio = boost::asio;
using asio::ip::tcp;

std::string render_metrics(const EngineShared& s) {
    std::string out;
    out += "# HELP imgbatch_requests_in_flight Requests being sent to the provider now.\n";
    out += "# TYPE imgbatch_requests_in_flight gauge\n";
    for (const auto& p : s.providers)
        out += "imgbatch_requests_in_flight{provider=\"" + p->config.name + "\"} " +
               std::to_string(p->lane.in_flight()) + "\n";
    out += "# HELP imgbatch_images_total Images written and recorded since start.\n";
    out += "# TYPE imgbatch_images_total counter\n";
    for (const auto& p : s.providers)
        out += "imgbatch_images_total{provider=\"" + p->config.name + "\"} " +
               std::to_string(p->counters.images) + "\n";
    out += "# HELP imgbatch_attempts_total Attempts ended since start, by outcome.\n";
    out += "# TYPE imgbatch_attempts_total counter\n";
    for (const auto& p : s.providers)
        for (const auto& [outcome, n] : p->counters.attempts)
            out += "imgbatch_attempts_total{provider=\"" + p->config.name + "\",outcome=\"" +
                   outcome + "\"} " + std::to_string(n) + "\n";
    out +=
        "# HELP imgbatch_local_paused 1 while dispatching is held because the output "
        "directory cannot take the images received (they wait in memory).\n";
    out += "# TYPE imgbatch_local_paused gauge\n";
    out += "imgbatch_local_paused " + std::string(s.local_pause.empty() ? "0" : "1") + "\n";
    out +=
        "# HELP imgbatch_images_waiting_for_disk Attempts whose images wait in memory for "
        "a write to succeed.\n";
    out += "# TYPE imgbatch_images_waiting_for_disk gauge\n";
    out += "imgbatch_images_waiting_for_disk " + std::to_string(s.local_failing) + "\n";
    out += render_vendor_batch_metrics();
    return out;
}

namespace {

// A client gets this long to send its request and read the answer; then the connection is
// closed (a client that connects and says nothing must not hold a socket for ever).
constexpr auto kClientDeadline = std::chrono::seconds(10);

asio::awaitable<void> answer(EngineShared* s, tcp::socket socket) {
    asio::steady_timer deadline(s->executor, kClientDeadline);
    deadline.async_wait([&socket](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: the answer is done
        boost::system::error_code ignored;
        socket.close(ignored);
    });
    std::string request;
    auto buffer = asio::dynamic_buffer(request, 8192);
    auto [ec, n] = co_await asio::async_read_until(socket, buffer, "\r\n\r\n",
                                                   asio::as_tuple(asio::use_awaitable));
    if (ec) {
        deadline.cancel();
        co_return;
    }
    bool metrics = request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?");
    std::string body = metrics ? render_metrics(*s) : "not found\n";
    std::string head = std::string(metrics ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found") +
                       "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    head += body;
    co_await asio::async_write(socket, asio::buffer(head), asio::as_tuple(asio::use_awaitable));
    deadline.cancel();
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

asio::awaitable<void> serve_metrics(EngineShared* s, std::string listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("metrics_listen: expected host:port");
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    auto port = static_cast<unsigned short>(std::stoi(listen.substr(colon + 1)));
    tcp::endpoint endpoint(asio::ip::make_address(host), port);
    tcp::acceptor acceptor(s->executor, endpoint);
    spdlog::info("event=metrics_listening address={}", q(listen));
    // Accept errors that persist (out of file descriptors) are waited out with a growing
    // pause, logged once per run, instead of spinning.
    auto pause = std::chrono::milliseconds(0);
    asio::steady_timer backoff(s->executor);
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted) co_return;
            if (pause.count() == 0)
                spdlog::warn("event=metrics_accept_error error={}", q(ec.message()));
            pause = std::clamp(pause * 2, std::chrono::milliseconds(10),
                               std::chrono::milliseconds(1000));
            backoff.expires_after(pause);
            co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        pause = std::chrono::milliseconds(0);
        asio::co_spawn(s->executor, answer(s, std::move(socket)), asio::detached);
    }
}

}  // namespace imgbatch::daemon
