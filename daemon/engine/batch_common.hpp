#pragma once
// Private to the batch runner's files (batch_runner.cpp: the loop and polling;
// batch_submit.cpp: input file, upload, create, adoption; batch_apply.cpp: output files and
// lines through the completion path): the runner's state and the helpers they share.
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "daemon/engine/attempt.hpp"
#include "daemon/engine/batch_vendor.hpp"
#include "daemon/logfmt.hpp"

// GCC 12 reports a false -Wmismatched-new-delete on Asio coroutine frames.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace imgbatch::daemon::vbatch {
namespace asio = boost::asio;
namespace bt = batch_types;
using jobs::Error;
using jobs::ErrorClass;
using jobs::VendorBatchRow;

constexpr int kGroup = 64;             // output lines recorded per group commit
constexpr int kListPage = 100;         // vendor batches per page when adopting
constexpr double kAdoptSlackS = 3600;  // clock skew allowed when looking for a lost create
// The largest result file downloaded (50,000 large images as base64 JSON lines).
constexpr std::uint64_t kMaxResultFileBytes = std::uint64_t{1} << 40;

// Runs fn() on the writer pool; its result (or exception) comes back on the caller's executor.
template <class R, class Fn>
inline asio::awaitable<R> on_pool(EngineShared* s, Fn fn) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [s](auto handler, Fn f) {
            asio::post(s->writer_pool, [h = std::move(handler), f = std::move(f)]() mutable {
                std::exception_ptr ep;
                R result{};
                try {
                    result = f();
                } catch (...) {
                    ep = std::current_exception();
                }
                auto ex = asio::get_associated_executor(h);
                asio::post(ex, [h = std::move(h), ep, r = std::move(result)]() mutable {
                    std::move(h)(ep, std::move(r));
                });
            });
        },
        asio::use_awaitable, std::move(fn));
}

// Holds a stop until the step that writes to the database is done (shutdown waits for
// claims_pending).
struct Busy {
    explicit Busy(EngineShared* s) : s_(s) { ++s_->claims_pending; }
    ~Busy() {
        --s_->claims_pending;
        s_->attempt_ended.cancel();
    }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

  private:
    EngineShared* s_;
};

// Metrics of the runners (network thread only).
struct Gauges {
    std::map<std::string, int> open;  // by local state / vendor status
    std::uint64_t created = 0, adopted = 0, finished = 0;
};
inline std::map<std::string, Gauges>& gauges() {
    static std::map<std::string, Gauges> g;
    return g;
}

struct Poll {
    double next = 0;
    double delay = 0;
};

// The input of a vendor batch kept between its upload and its create: the model of its lines
// and, for an inline input, the lines themselves (rebuilt from the database after a restart).
struct Input {
    std::string model;
    std::string lines;
};

struct Runner {
    EngineShared* s;
    ProviderRuntime* p;
    std::unique_ptr<BatchVendor> v;
    std::string instance;
    std::map<std::int64_t, Input> inputs;
    std::map<std::int64_t, Poll> polls;
    std::set<std::int64_t> maybe_created;  // uploaded rows whose create may have happened
    std::set<std::int64_t> cancel_sent;
    std::map<std::int64_t, std::string> logged;  // state/status last logged
    // After an upload or create that failed (vendor down, bad key): no submission before
    // hold_until; hold_s grows from batch_poll_s, doubling up to batch_poll_max_s.
    double hold_until = 0;
    double hold_s = 0;
    // Budgets (README "Budgets"): the request ids each vendor batch holds a reservation for in
    // this daemon, until each line is recorded or the vendor batch ends; and whether the
    // reservations of the vendor batches already at the vendor were rebuilt from the database
    // since a budget was set (at start, by SIGHUP).
    std::map<std::int64_t, std::set<std::int64_t>> reserved{};
    bool reservations_built = false;
};

const std::string& name(Runner* r);
// One log line per change of local state or vendor status.
void log_state(Runner* r, const VendorBatchRow& row);
// Writes row (update_vendor_batch) and logs its state.
asio::awaitable<void> save(Runner* r, const VendorBatchRow& row);
asio::awaitable<HttpResult> send(Runner* r, HttpRequest http);
// The error of a call: its failure, or its non-2xx answer.
std::optional<Error> call_error(const HttpResult& res);
// A vendor error that will not go away by asking again: the lines are recorded with it.
bool permanent(const Error& e);
// The lines of vb not recorded yet (request id > after), in request id order.
asio::awaitable<std::vector<jobs::ClaimedRequest>> open_lines(Runner* r, std::int64_t vb,
                                                              std::int64_t after, int limit);
// The direct call a line stands for (throws on params that are not a JSON object).
GenerationRequest generation(const jobs::ClaimedRequest& req);
// Records lines that end without a vendor answer: each with error (an attempt decided by the
// policy), or returned to the queue without using an attempt (no error).
asio::awaitable<void> end_lines(Runner* r, std::int64_t vb, std::vector<jobs::ClaimedRequest> lines,
                                std::optional<Error> error, double started);

// Budgets (batch_runner.cpp). The lines of a chunk not uploaded yet that the budgets admit, each
// reserved at its worst case at the batch price; the others go back to the queue without using
// an attempt (the row is deleted when none is left). With no budget set: every line.
asio::awaitable<std::vector<jobs::ClaimedRequest>> admit_chunk(
    Runner* r, VendorBatchRow& row, std::vector<jobs::ClaimedRequest> lines);
// Releases the reservations vendor batch vb still holds (it ended, or its lines are admitted
// again) and re-checks the holds.
void release_reserved(Runner* r, std::int64_t vb);
// A line of vb ended (recorded with cost, or not recorded): its reservation, if any, becomes its
// cost or goes (budget_line_ended). The caller re-checks the holds (budget_recheck).
void line_ended(Runner* r, std::int64_t vb, std::int64_t request_id, const std::string& batch,
                bool recorded, std::optional<double> cost, double finished_at);

// batch_submit.cpp
// preparing -> uploaded (first: the lines just claimed; empty: read from the database).
asio::awaitable<bool> upload(Runner* r, VendorBatchRow& row,
                             std::vector<jobs::ClaimedRequest> first);
// uploaded -> submitted: adopts the vendor batch a lost create made, or creates it.
asio::awaitable<bool> create(Runner* r, VendorBatchRow& row);
// Copies the vendor's view of b into row.
void take(VendorBatchRow& row, const bt::Batch& b);

// batch_apply.cpp
// applying -> done: records the output and error files, then returns what is left.
asio::awaitable<void> apply(Runner* r, VendorBatchRow& row,
                            const std::vector<std::int64_t>& bad_lines);

}  // namespace imgbatch::daemon::vbatch
