#pragma once
// What systemd sees of a running daemon: the watchdog (WATCHDOG=1 while the event loop and
// the DB thread both make progress) and the STATUS= line (queue, in flight, images, paused
// providers).
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <string>

#include "daemon/engine/dispatcher.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

// The queue as STATUS= shows it, read through partial indexes only (requests_claim,
// requests_running, jobs_state): its cost follows the open work, not the table's history.
struct QueueCounts {
    std::int64_t queued = 0;   // requests waiting for a slot
    std::int64_t running = 0;  // requests leased by any daemon
    std::int64_t pending = 0;  // jobs inserted by SQL, not yet planned
};
QueueCounts read_queue(jobs::Store& store);

// The STATUS= text: "queue 12, in flight 4, images 56, paused: relay (auth: ...)". queue is
// the requests queued or running less this daemon's in flight, plus "(+N jobs to plan)";
// images are those this daemon wrote.
std::string service_status(const EngineShared& shared, const QueueCounts& queue,
                           std::uint64_t images);

// Whether the DB thread made progress since the last look (last_steps): it is waiting for
// work, or it finished a step. Updates last_steps.
bool db_thread_alive(const DbWorker& db, std::uint64_t& last_steps);

// Sends WATCHDOG=1 every interval / 4 while the event loop runs this coroutine and the DB
// thread is alive; a DB thread stuck for `interval` (the unit's WatchdogSec) in one step
// stops the messages and systemd kills the daemon. Runs until the io_context stops.
boost::asio::awaitable<void> watchdog_loop(EngineShared* shared,
                                           std::chrono::microseconds interval);

// Refreshes STATUS= every `every` (reading the queue on the DB thread) until the stop
// begins (the stop sends its own). images() is read on the event loop.
boost::asio::awaitable<void> status_loop(EngineShared* shared, std::chrono::milliseconds every,
                                         std::uint64_t (*images)(const EngineShared&));

}  // namespace imgbatch::daemon
