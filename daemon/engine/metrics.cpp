#include "daemon/engine/metrics.hpp"
#include "daemon/engine/batch_runner.hpp"
#include "daemon/logfmt.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "daemon/config.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace imgbatch::daemon {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

#ifndef IMGBATCH_VERSION
#define IMGBATCH_VERSION "unknown"
#endif

// A label value in the exposition format: \\ \" and \n escaped.
std::string esc(std::string_view v) {
    std::string out;
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string num(double v) {
    if (v == static_cast<double>(static_cast<std::int64_t>(v)) && std::abs(v) < 1e15)
        return std::to_string(static_cast<std::int64_t>(v));
    return fmt::format("{:.6g}", v);
}

struct Out {
    std::string text;
    void head(const char* name, const char* type, const char* help) {
        text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(const std::string& name, const std::string& labels, double v) {
        text += name;
        if (!labels.empty()) text += "{" + labels + "}";
        text += " " + num(v) + "\n";
    }
};

std::string prov(const ProviderRuntime& p) {
    return "provider=\"" + esc(p.config.name) + "\"";
}

// Why a provider is paused, as a label: auth, quota or user (a pause from the command line).
std::string pause_kind(const Lane& lane) {
    if (!lane.paused()) return "";
    const auto& r = lane.pause_reason();
    if (r.starts_with("auth")) return "auth";
    if (r.starts_with("quota")) return "quota";
    return "user";
}

// Resident memory from /proc/self/statm (its second field, in pages).
double resident_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    int n = std::fscanf(f, "%llu %llu", &size, &resident);
    std::fclose(f);
    if (n != 2) return 0;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

const char* const kJobStates[] = {"pending", "queued",  "running",   "succeeded",
                                  "failed",  "blocked", "cancelled", "rejected"};
const char* const kErrorClasses[] = {
    "timeout",         "network", "rate_limited", "server",       "moderation",
    "invalid_request", "auth",    "quota",        "bad_response", "local"};

}  // namespace

std::string metric_label_value(std::string_view v) {
    return esc(v);
}

std::string render_metrics(const EngineShared& s) {
    Out o;
    const double now = jobs::unix_now();
    o.head("imgbatch_build_info", "gauge", "Always 1: the version of the daemon, as labels.");
    o.sample("imgbatch_build_info",
             fmt::format("version=\"{}\",compiler=\"{}\"", IMGBATCH_VERSION, esc(__VERSION__)), 1);
    o.head("process_start_time_seconds", "gauge", "Start time of the process (Unix seconds).");
    o.sample("process_start_time_seconds", "", s.started_at);
    o.head("process_resident_memory_bytes", "gauge", "Resident memory of the process.");
    o.sample("process_resident_memory_bytes", "", resident_bytes());

    o.head("imgbatch_jobs", "gauge",
           "Jobs in the database by state (every daemon's), as last read (every few seconds).");
    for (const char* st : kJobStates) {
        double v = 0;
        if (auto it = s.db_stats.jobs_by_state.find(st); it != s.db_stats.jobs_by_state.end())
            v = static_cast<double>(it->second);
        o.sample("imgbatch_jobs", fmt::format("state=\"{}\"", st), v);
    }
    o.head("imgbatch_requests", "gauge",
           "Open requests in the database by provider and state: queued (waiting, backoff "
           "included) and running (under a live lease, any daemon).");
    for (const auto& p : s.providers) {
        jobs::ProviderStats ps;
        if (auto it = s.db_stats.providers.find(p->config.name); it != s.db_stats.providers.end())
            ps = it->second;
        o.sample("imgbatch_requests", prov(*p) + ",state=\"queued\"",
                 static_cast<double>(ps.queued));
        o.sample("imgbatch_requests", prov(*p) + ",state=\"running\"",
                 static_cast<double>(ps.claimed));
    }
    o.head("imgbatch_requests_in_flight", "gauge", "Requests being sent to the provider now.");
    for (const auto& p : s.providers)
        o.sample("imgbatch_requests_in_flight", prov(*p), p->lane.in_flight());

    o.head("imgbatch_attempts_total", "counter",
           "Attempts ended since start, by outcome (ok, partial, error, returned, abandoned) "
           "and error class (\"\" when none).");
    for (const auto& p : s.providers) {
        std::map<std::pair<std::string, std::string>, std::uint64_t> all = p->counters.attempts;
        for (const char* outcome : {"ok", "returned", "abandoned"}) all[{outcome, ""}] += 0;
        all[{"partial", "partial"}] += 0;
        for (const char* cls : kErrorClasses) all[{"error", cls}] += 0;
        for (const auto& [key, n] : all)
            o.sample(
                "imgbatch_attempts_total",
                prov(*p) + ",outcome=\"" + esc(key.first) + "\",class=\"" + esc(key.second) + "\"",
                static_cast<double>(n));
    }
    o.head("imgbatch_request_duration_seconds", "histogram",
           "Time from sending a request to its answer decoded and its images written.");
    for (const auto& p : s.providers)
        o.text += p->counters.duration.render("imgbatch_request_duration_seconds", prov(*p));

    o.head("imgbatch_provider_paused", "gauge",
           "1 while the provider is paused, with the reason: auth (401/403), quota, or user "
           "(imgbatch pause).");
    for (const auto& p : s.providers) {
        std::string kind = pause_kind(p->lane);
        for (const char* r : {"auth", "quota", "user"})
            o.sample("imgbatch_provider_paused", prov(*p) + ",reason=\"" + r + "\"",
                     kind == r ? 1 : 0);
    }
    o.head("imgbatch_lane_holding", "gauge",
           "1 while the provider's lane holds all requests (after a 429, or a run of server "
           "or network failures).");
    for (const auto& p : s.providers)
        o.sample("imgbatch_lane_holding", prov(*p), p->lane.held_until() > now ? 1 : 0);
    o.head("imgbatch_lane_learning", "gauge",
           "1 while the lane uses a request rate learned from 429s or x-ratelimit headers "
           "(no requests_per_minute configured).");
    for (const auto& p : s.providers)
        o.sample("imgbatch_lane_learning", prov(*p),
                 p->lane.limits().requests_per_minute <= 0 && p->lane.learned_rpm() > 0 ? 1 : 0);
    o.head("imgbatch_lane_rate_rpm", "gauge",
           "Request rate the lane applies now (requests per minute): the configured one times "
           "its slow-down factor, or the learned one; 0 when unlimited.");
    for (const auto& p : s.providers) {
        const Lane& l = p->lane;
        double rpm = l.limits().requests_per_minute > 0
                         ? l.limits().requests_per_minute * l.rate_factor()
                         : l.learned_rpm();
        o.sample("imgbatch_lane_rate_rpm", prov(*p), rpm);
    }

    o.head("imgbatch_images_total", "counter", "Images written and recorded since start.");
    for (const auto& p : s.providers)
        o.sample("imgbatch_images_total", prov(*p), static_cast<double>(p->counters.images));
    o.head("imgbatch_written_bytes_total", "counter",
           "Bytes of the images written and recorded since start.");
    for (const auto& p : s.providers)
        o.sample("imgbatch_written_bytes_total", prov(*p), static_cast<double>(p->counters.bytes));
    o.head("imgbatch_usage_tokens_total", "counter",
           "Tokens the provider reported in its answers' usage since start, by kind (input, "
           "output, total).");
    for (const auto& p : s.providers)
        for (const char* kind : {"input", "output", "total"}) {
            auto it = p->counters.tokens.find(kind);
            o.sample("imgbatch_usage_tokens_total", prov(*p) + ",kind=\"" + kind + "\"",
                     it == p->counters.tokens.end() ? 0 : static_cast<double>(it->second));
        }

    o.head("imgbatch_spend_usd_total", "counter",
           "USD the provider billed since start (attempts of known cost, worst cases included "
           "for billed attempts without usage), by model.");
    for (const auto& p : s.providers) {
        std::set<std::string> models(p->config.models.begin(), p->config.models.end());
        for (const auto& [model, usd] : p->counters.spend_usd) models.insert(model);
        for (const auto& model : models) {
            auto it = p->counters.spend_usd.find(model);
            o.sample("imgbatch_spend_usd_total", prov(*p) + ",model=\"" + esc(model) + "\"",
                     it == p->counters.spend_usd.end() ? 0 : it->second);
        }
    }

    o.head("imgbatch_leases_expired_total", "counter",
           "Requests requeued since start because their lease expired or their daemon is gone.");
    o.sample("imgbatch_leases_expired_total", "", static_cast<double>(s.leases_expired));
    o.head("imgbatch_commit_duration_seconds", "histogram",
           "Duration of the group commits of completions that succeeded.");
    o.text += s.db.commit_seconds().render("imgbatch_commit_duration_seconds", "");
    o.head("imgbatch_commit_errors_total", "counter",
           "Group commits that failed (retried: the completions stay staged).");
    o.sample("imgbatch_commit_errors_total", "", static_cast<double>(s.db.failed_commits()));

    o.head("imgbatch_local_paused", "gauge",
           "1 while dispatching is held because the output directory cannot take the images "
           "received (they wait in memory).");
    o.sample("imgbatch_local_paused", "", s.local_pause.empty() ? 0 : 1);
    o.head("imgbatch_images_waiting_for_disk", "gauge",
           "Attempts whose images wait in memory for a write to succeed.");
    o.sample("imgbatch_images_waiting_for_disk", "", s.local_failing);
    o.text += render_vendor_batch_metrics();
    o.text += render_budget_metrics(s.budget, now);
    return o.text;
}

std::string Histogram::render(const std::string& name, const std::string& labels) const {
    std::string out;
    std::string sep = labels.empty() ? "" : labels + ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
        cumulative += counts_[i];
        out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, sep, num(bounds_[i]), cumulative);
    }
    out += fmt::format("{}_bucket{{{}le=\"+Inf\"}} {}\n", name, sep, count_);
    std::string l = labels.empty() ? "" : "{" + labels + "}";
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, l, num(sum_), name, l, count_);
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

MetricsSocket::MetricsSocket(const std::string& listen) : listen_(listen) {
    auto fail = [&listen](const std::string& why) {
        return ConfigError("metrics_listen: cannot listen on " + listen + ": " + why);
    };
    auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon + 1 == listen.size())
        throw fail("expected host:port (\"127.0.0.1:9464\", \"[::1]:9464\")");
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    unsigned long port = 0;
    try {
        std::size_t used = 0;
        port = std::stoul(listen.substr(colon + 1), &used);
        if (used != listen.size() - colon - 1 || port > 65535) throw std::out_of_range("port");
    } catch (const std::exception&) {
        throw fail("the port must be a number from 0 to 65535");
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) throw fail("'" + host + "' is not an IP address");
    asio::io_context io;
    tcp::acceptor acceptor(io);
    tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw fail(ec.message());
    v6_ = address.is_v6();
    fd_ = acceptor.release(ec);
    if (ec) throw fail(ec.message());
}

MetricsSocket::~MetricsSocket() {
    if (fd_ >= 0) ::close(fd_);
}

int MetricsSocket::release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
}

asio::awaitable<void> serve_metrics(EngineShared* s, MetricsSocket* socket) {
    const bool v6 = socket->v6_;
    tcp::acceptor acceptor(s->executor, v6 ? tcp::v6() : tcp::v4(), socket->release());
    spdlog::info("event=metrics_listening address={}", q(socket->address()));
    // Accept errors that persist (out of file descriptors) are waited out with a growing
    // pause, logged once per run, instead of spinning.
    auto pause = std::chrono::milliseconds(0);
    asio::steady_timer backoff(s->executor);
    for (;;) {
        auto [ec, peer] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
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
        asio::co_spawn(s->executor, answer(s, std::move(peer)), asio::detached);
    }
}

}  // namespace imgbatch::daemon
