#include "daemon/engine/supervise.hpp"

#include <SQLiteCpp/Statement.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "daemon/engine/notify.hpp"
#include "daemon/logfmt.hpp"

namespace imgbatch::daemon {
namespace asio = boost::asio;

QueueCounts read_queue(jobs::Store& store) {
    SQLite::Statement q(store.db(),
                        "SELECT (SELECT count(*) FROM requests WHERE state = 'queued'), "
                        "(SELECT count(*) FROM requests WHERE state = 'running'), "
                        "(SELECT count(*) FROM jobs WHERE state = 'pending')");
    QueueCounts c;
    if (q.executeStep()) {
        c.queued = q.getColumn(0).getInt64();
        c.running = q.getColumn(1).getInt64();
        c.pending = q.getColumn(2).getInt64();
    }
    return c;
}

std::string service_status(const EngineShared& shared, const QueueCounts& queue,
                           std::uint64_t images) {
    const std::int64_t open = queue.queued + queue.running;
    const auto in_flight = static_cast<std::int64_t>(shared.in_flight.size());
    std::string s = "queue " + std::to_string(std::max<std::int64_t>(open - in_flight, 0));
    if (queue.pending > 0) s += " (+" + std::to_string(queue.pending) + " jobs to plan)";
    s += ", in flight " + std::to_string(in_flight) + ", images " + std::to_string(images);
    std::string paused;
    for (const auto& p : shared.providers) {
        if (!p->lane.paused()) continue;
        paused += (paused.empty() ? "" : "; ") + p->config.name;
        if (!p->lane.pause_reason().empty()) paused += " (" + p->lane.pause_reason() + ")";
    }
    if (!paused.empty()) s += ", paused: " + paused;
    if (!shared.local_pause.empty()) s += ", held here: " + shared.local_pause;
    // One line: a reason from a provider may hold anything.
    std::replace_if(
        s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return s;
}

bool db_thread_alive(const DbWorker& db, std::uint64_t& last_steps) {
    // Read steps first: a step that ends between the two reads counts as progress.
    const std::uint64_t steps = db.steps();
    const bool busy = db.busy();
    const bool alive = !busy || steps != last_steps;
    last_steps = steps;
    return alive;
}

asio::awaitable<void> watchdog_loop(EngineShared* shared, std::chrono::microseconds interval) {
    asio::steady_timer t(shared->executor);
    std::uint64_t last_steps = shared->db.steps();
    bool held = false;
    // The first look comes a quarter interval after the start: a step is judged over a whole
    // quarter, never by a look taken the instant it began.
    notify_watchdog();
    for (;;) {
        t.expires_after(interval / 4);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        // This line runs: the event loop is alive.
        if (db_thread_alive(shared->db, last_steps)) {
            notify_watchdog();
            if (held)
                spdlog::info("event=watchdog_resumed note={}", q("the DB thread moves again"));
            held = false;
        } else if (!held) {
            held = true;
            spdlog::warn("event=watchdog_held note={}",
                         q("the DB thread is stuck in one step: no WATCHDOG=1 until it moves"));
        }
    }
}

asio::awaitable<void> status_loop(EngineShared* shared, std::chrono::milliseconds every,
                                  std::uint64_t (*images)(const EngineShared&)) {
    asio::steady_timer t(shared->executor);
    while (!shared->stopping) {
        try {
            auto read = [](jobs::Store& st) { return read_queue(st); };
            auto queue = co_await shared->db.call<QueueCounts>(std::move(read));
            if (shared->stopping) break;
            notify_status(service_status(*shared, queue, images(*shared)));
        } catch (const std::exception& ex) {
            spdlog::debug("event=status_failed error={}", q(ex.what()));
        }
        t.expires_after(every);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

}  // namespace imgbatch::daemon
