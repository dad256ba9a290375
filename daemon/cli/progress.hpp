#pragma once
// The progress of batches as `status --watch`, `status --json` and `wait` show it: a snapshot
// read from the database (batches, lanes, daemons), and its rendering as a frame redrawn on a
// terminal, as plain lines, or as JSON.
#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/cli/context.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon::cli {

using jobs::kHeartbeatFreshS;  // a daemon counts as alive while its heartbeat is fresher

struct LaneView {
    jobs::LaneLoad load;
    // active (requests in flight), holding (queued, none due yet, or due and none in
    // flight), paused (by the user or the daemon: detail has the reason), local pause (every
    // live daemon holds its dispatching), waiting (no daemon alive), idle (nothing queued),
    // budget (a budget holds its next call: detail says which).
    std::string state;
    std::string detail;
};

struct DaemonView {
    jobs::DaemonRow row;
    bool alive = false;
};

struct BatchView {
    jobs::BatchProgress p;
    jobs::BatchTimes times;
    bool final = false;
    double fraction = 0;        // settled work: 1 - images still missing / images wanted
    double elapsed_s = 0;       // since the first attempt (until the last job ended, once final)
    double images_per_min = 0;  // images done / elapsed: measured since the batch started
    std::optional<double> eta_s;
    std::string no_eta;  // why there is no ETA while not final
};

struct Snapshot {
    double now = 0;
    std::vector<BatchView> batches;
    std::size_t final_hidden = 0;  // final batches not shown (only with no --batch)
    std::vector<LaneView> lanes;
    std::vector<DaemonView> daemons;
    bool daemon_alive() const;
    bool all_final() const;  // every batch shown is final (and there is one)
};

// ---- pure parts (unit-tested) ----
// The state of a provider's lane.
LaneView lane_view(const jobs::LaneLoad& load, const jobs::ProviderState* state,
                   const std::vector<DaemonView>& daemons, double now);
// A lane that a live daemon's budget holds (budget_holds) and that is not paused shows state
// "budget", detail "day budget 10.00 USD: 9.95 spent or in flight" (see README "Budgets").
void apply_budget_holds(std::vector<LaneView>& lanes, const std::vector<jobs::BudgetHoldRow>& holds,
                        const std::vector<DaemonView>& daemons);
// "day budget 10.00 USD: 9.95 spent or in flight" ("batch night budget ..." for a batch).
std::string budget_hold_text(const jobs::BudgetHoldRow& h);
// Progress, rate since the start and ETA of a batch. No ETA while no daemon is alive or every
// lane with work is paused.
BatchView batch_view(const jobs::BatchProgress& p, const jobs::BatchTimes& t, double now,
                     const std::vector<LaneView>& lanes, bool daemon_alive);
// "[#####.....]" with `cells` cells inside the brackets.
std::string progress_bar(double fraction, int cells);

struct FrameStyle {
    bool color = false;
    int width = 80;  // lines are cut to this many columns (a wrapped line breaks the redraw)
};
// The lines of one --watch frame on a terminal.
std::vector<std::string> render_frame(const Snapshot& s, const FrameStyle& style);
// "night 42.5% 170/400 images, jobs 200: ..., ETA 2m21s, elapsed 1m44s, 98.1 images/min".
std::string batch_line(const BatchView& b);
// One plain line per batch (or one line when there is none): --watch when not on a terminal.
std::string render_lines(const Snapshot& s);
boost::json::object batch_json(const BatchView& b);

// Reads snapshots of one batch, or of every batch not final. A batch seen unfinished stays
// shown once it is final. Remembers each batch's start between reads.
class ProgressReader {
  public:
    ProgressReader(Context& ctx, std::optional<std::string> batch);
    Snapshot read();

  private:
    Context& ctx_;
    std::optional<std::string> batch_;
    std::map<std::string, double> started_;
    std::set<std::string> seen_open_;
};

}  // namespace imgbatch::daemon::cli

namespace imgbatch::daemon::cli {

// SIGINT and SIGTERM set a flag instead of ending the process (status --watch).
void catch_stop_signals();
bool stop_requested();
// Sleeps s seconds, or less when a stop signal arrives; false then.
bool sleep_unless_stopped(double s);

// `status --watch` without --json: a frame redrawn in place on a terminal (ANSI cursor up and
// clear line; colours unless NO_COLOR; plain lines with TERM=dumb), else one line per batch per
// interval. With a batch it returns once the batch is final; else at SIGINT/SIGTERM.
int run_watch(Context& ctx, const std::optional<std::string>& batch, double interval_s);

}  // namespace imgbatch::daemon::cli
