#include "daemon/cli/progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "daemon/cli/format.hpp"
#include "jobs/state.hpp"

namespace imgbatch::daemon::cli {

namespace json = boost::json;

bool Snapshot::daemon_alive() const {
    return std::any_of(daemons.begin(), daemons.end(), [](const auto& d) { return d.alive; });
}

bool Snapshot::all_final() const {
    return !batches.empty() &&
           std::all_of(batches.begin(), batches.end(), [](const auto& b) { return b.final; });
}

LaneView lane_view(const jobs::LaneLoad& load, const jobs::ProviderState* state,
                   const std::vector<DaemonView>& daemons, double now) {
    LaneView v;
    v.load = load;
    bool alive = false, all_local = true;
    std::string local;
    for (const auto& d : daemons) {
        if (!d.alive) continue;
        alive = true;
        if (d.row.local_pause.empty())
            all_local = false;
        else
            local = d.row.local_pause;
    }
    if (state && state->paused) {
        v.state = "paused";
        v.detail = state->reason;
    } else if (alive && all_local) {
        v.state = "local pause";
        v.detail = local;
    } else if (load.claimed > 0) {
        v.state = "active";
    } else if (load.queued == 0) {
        v.state = "idle";
    } else if (!alive) {
        v.state = "waiting";
        v.detail = "no daemon alive";
    } else if (load.due == 0) {
        v.state = "holding";
        v.detail = "next request due in " + format_duration(std::max(0.0, load.next_due - now));
    } else {
        v.state = "holding";
        v.detail = std::to_string(load.due) + " due, none in flight";
    }
    return v;
}

std::string budget_hold_text(const jobs::BudgetHoldRow& h) {
    char buf[160];
    std::snprintf(buf, sizeof buf, " budget %.2f USD: %.2f spent or in flight", h.limit_usd,
                  h.spent_usd);
    std::string out = h.budget == "batch" ? "batch " + h.batch : h.budget;
    out += buf;
    if (!h.need_usd) out += ", next call has no price";
    return out;
}

void apply_budget_holds(std::vector<LaneView>& lanes, const std::vector<jobs::BudgetHoldRow>& holds,
                        const std::vector<DaemonView>& daemons) {
    for (auto& l : lanes) {
        if (l.state == "paused") continue;
        for (const auto& h : holds) {
            if (h.provider != l.load.provider) continue;
            const bool alive = std::any_of(daemons.begin(), daemons.end(), [&](const auto& d) {
                return d.alive && d.row.owner == h.owner;
            });
            if (!alive) continue;
            l.state = "budget";
            l.detail = budget_hold_text(h);
            break;
        }
    }
}

BatchView batch_view(const jobs::BatchProgress& p, const jobs::BatchTimes& t, double now,
                     const std::vector<LaneView>& lanes, bool daemon_alive) {
    BatchView b;
    b.p = p;
    b.times = t;
    b.final = p.final();
    b.fraction = p.images_wanted > 0 ? 1.0 - static_cast<double>(p.images_remaining) /
                                                 static_cast<double>(p.images_wanted)
                                     : (b.final ? 1.0 : 0.0);
    b.fraction = std::clamp(b.fraction, 0.0, 1.0);
    if (t.started_at > 0) {
        const double end = b.final && t.finished_at >= t.started_at ? t.finished_at : now;
        b.elapsed_s = std::max(0.0, end - t.started_at);
    }
    if (b.elapsed_s > 0) b.images_per_min = static_cast<double>(p.images_done) * 60 / b.elapsed_s;
    if (b.final) return b;

    bool work = false, all_paused = true;
    for (const auto& l : lanes) {
        if (l.load.queued + l.load.claimed == 0) continue;
        work = true;
        if (l.state != "paused" && l.state != "local pause" && l.state != "budget")
            all_paused = false;
    }
    if (!daemon_alive)
        b.no_eta = "no daemon alive";
    else if (work && all_paused)
        b.no_eta = "every provider paused";
    else if (b.images_per_min <= 0)
        b.no_eta = "no images yet";
    else
        b.eta_s = static_cast<double>(p.images_remaining) * 60 / b.images_per_min;
    return b;
}

std::string progress_bar(double fraction, int cells) {
    cells = std::max(cells, 1);
    const int full = static_cast<int>(std::floor(std::clamp(fraction, 0.0, 1.0) * cells));
    std::string out = "[";
    out.append(static_cast<std::size_t>(full), '#');
    out.append(static_cast<std::size_t>(cells - full), '.');
    return out + "]";
}

namespace {

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string percent(double fraction) {
    return fixed(std::floor(fraction * 1000) / 10, 1) + "%";
}

// SGR colours, or nothing.
struct Paint {
    bool on;
    std::string operator()(const std::string& s, const char* sgr) const {
        // sgr "0": no colour.
        return on && std::string_view(sgr) != "0" ? std::string("\x1b[") + sgr + "m" + s + "\x1b[0m"
                                                  : s;
    }
};

// Cuts s to `width` columns (escape sequences take none; UTF-8 continuation bytes neither).
std::string cut(const std::string& s, int width) {
    std::string out;
    int cols = 0;
    bool cut_any = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0x1b) {
            const auto end = s.find('m', i);
            if (end == std::string::npos) break;
            out.append(s, i, end - i + 1);
            i = end;
            continue;
        }
        if ((c & 0xC0) != 0x80) {
            if (cols == width) {
                cut_any = true;
                continue;
            }
            ++cols;
        } else if (cut_any) {
            continue;
        }
        out += s[i];
    }
    return out;
}

std::string counts_text(const BatchView& b, const Paint& paint) {
    using jobs::JobState;
    auto n = [&](JobState s) { return b.p.count(s); };
    std::string out = "jobs " + std::to_string(b.p.jobs) + ": succeeded " +
                      std::to_string(n(JobState::succeeded));
    const auto failed = n(JobState::failed), blocked = n(JobState::blocked);
    out += ", " + paint("failed " + std::to_string(failed), failed ? "31" : "0");
    out += ", " + paint("blocked " + std::to_string(blocked), blocked ? "31" : "0");
    out += ", retrying " + std::to_string(b.p.retrying);
    for (auto s : {JobState::pending, JobState::queued, JobState::running, JobState::cancelled,
                   JobState::rejected})
        if (n(s)) out += ", " + std::string(jobs::to_string(s)) + " " + std::to_string(n(s));
    return out;
}

// "finished" or the ETA first (a narrow terminal cuts the end of a line), then time and rate.
std::string timing_text(const BatchView& b, const Paint& paint) {
    std::string out;
    if (b.final)
        out += paint("finished", "32");
    else if (b.eta_s)
        out += "ETA " + format_duration(*b.eta_s);
    else
        out += paint("ETA - (" + b.no_eta + ")", "33");
    if (b.times.started_at > 0)
        out += ", elapsed " + format_duration(b.elapsed_s) + ", " + fixed(b.images_per_min, 1) +
               " images/min";
    else
        out += ", not started";
    return out;
}

std::string lane_text(const LaneView& l) {
    std::string out = l.load.provider + " " + l.state;
    if (!l.detail.empty()) out += " (" + l.detail + ")";
    return out;
}

std::string daemon_text(const Snapshot& s, const Paint& paint) {
    std::string out;
    for (const auto& d : s.daemons) {
        if (!out.empty()) out += "; ";
        const double age = std::max(0.0, s.now - d.row.heartbeat_at);
        out += d.row.host + " pid " + std::to_string(d.row.pid) + " " +
               (d.alive ? paint("alive", "32") : paint("not responding", "31")) + " (heartbeat " +
               format_duration(age) + " ago)";
        if (!d.row.local_pause.empty())
            out += " " + paint("local pause: " + d.row.local_pause, "33");
    }
    return out.empty() ? paint("none running", "31") : out;
}

}  // namespace

std::vector<std::string> render_frame(const Snapshot& s, const FrameStyle& style) {
    const Paint paint{style.color};
    std::vector<std::string> lines;
    lines.push_back("imgbatch " + format_time(s.now) + "  daemon: " + daemon_text(s, paint));
    std::size_t name_w = 0;
    for (const auto& b : s.batches) name_w = std::max(name_w, b.p.name.size());
    for (const auto& b : s.batches) {
        std::string name = b.p.name;
        name.resize(name_w, ' ');
        const int cells = style.width >= 80 ? 24 : std::max(10, style.width - 56);
        lines.push_back(name + " " + paint(progress_bar(b.fraction, cells), b.final ? "32" : "36") +
                        " " + percent(b.fraction) + "  " + std::to_string(b.p.images_done) + "/" +
                        std::to_string(b.p.images_wanted) + " images  " + timing_text(b, paint));
        lines.push_back(std::string(name_w + 1, ' ') + counts_text(b, paint));
    }
    if (s.batches.empty()) lines.push_back("no unfinished batch");
    if (s.final_hidden)
        lines.push_back("(" + std::to_string(s.final_hidden) + " finished batches not shown)");
    for (const auto& l : s.lanes) {
        const char* sgr = l.state == "paused" || l.state == "local pause" ? "33"
                          : l.state == "active"                           ? "32"
                                                                          : "0";
        std::string claimed;
        if (l.load.claimed > l.load.in_flight)
            claimed = " (" + std::to_string(l.load.claimed) + " claimed)";
        lines.push_back("lane " + paint(lane_text(l), sgr) + "  in flight " +
                        std::to_string(l.load.in_flight) + claimed + ", queued " +
                        std::to_string(l.load.queued));
    }
    for (auto& line : lines) line = cut(line, style.width);
    return lines;
}

std::string batch_line(const BatchView& b) {
    const Paint plain{false};
    return b.p.name + " " + percent(b.fraction) + " " + std::to_string(b.p.images_done) + "/" +
           std::to_string(b.p.images_wanted) + " images, " + counts_text(b, plain) + ", " +
           timing_text(b, plain);
}

std::string render_lines(const Snapshot& s) {
    const Paint plain{false};
    std::string tail = "; daemon: " + daemon_text(s, plain);
    std::string lanes;
    for (const auto& l : s.lanes) lanes += (lanes.empty() ? "; lanes: " : ", ") + lane_text(l);
    tail = lanes + tail;
    const std::string stamp = rfc3339(s.now);
    std::string out;
    for (const auto& b : s.batches) out += stamp + " " + batch_line(b) + tail + "\n";
    if (s.batches.empty()) out = stamp + " no unfinished batch" + tail + "\n";
    return out;
}

json::object batch_json(const BatchView& b) {
    json::object by_state;
    for (const auto& [state, n] : b.p.jobs_by_state) by_state[state] = n;
    const char* state = b.final ? "finished" : b.times.started_at > 0 ? "running" : "waiting";
    return json::object{
        {"name", b.p.name},
        {"state", state},
        {"jobs", b.p.jobs},
        {"by_state", std::move(by_state)},
        {"retrying", b.p.retrying},
        {"images_done", b.p.images_done},
        {"images_wanted", b.p.images_wanted},
        {"progress", json_number(std::round(b.fraction * 10000) / 10000)},
        {"created_at", json_time(b.p.created_at)},
        {"started_at", json_time(b.times.started_at)},
        {"finished_at", b.final ? json_time(b.times.finished_at) : json::value(nullptr)},
        {"elapsed_s", json_number(std::round(b.elapsed_s * 10) / 10)},
        {"images_per_min", json_number(std::round(b.images_per_min * 100) / 100)},
        {"eta_s", b.eta_s ? json_number(std::round(*b.eta_s)) : json::value(nullptr)},
        {"no_eta", b.final ? json::value(nullptr) : string_or_null(b.no_eta)}};
}

ProgressReader::ProgressReader(Context& ctx, std::optional<std::string> batch)
    : ctx_(ctx), batch_(std::move(batch)) {}

Snapshot ProgressReader::read() {
    auto& store = ctx_.existing_store();
    Snapshot s;
    s.now = jobs::unix_now();
    for (auto& d : store.running_daemons()) {
        const bool alive = d.heartbeat_at > s.now - kHeartbeatFreshS;
        s.daemons.push_back({std::move(d), alive});
    }
    const auto states = store.provider_states();
    auto state_of = [&](const std::string& name) -> const jobs::ProviderState* {
        for (const auto& st : states)
            if (st.name == name) return &st;
        return nullptr;
    };
    // Configured providers in config order, then any other with work or a pause.
    std::vector<jobs::LaneLoad> loads = store.lane_loads(s.now);
    std::vector<std::string> names;
    for (const auto& p : ctx_.config().providers) names.push_back(p.name);
    for (const auto& l : loads)
        if (std::find(names.begin(), names.end(), l.provider) == names.end())
            names.push_back(l.provider);
    for (const auto& st : states)
        if (st.paused && std::find(names.begin(), names.end(), st.name) == names.end())
            names.push_back(st.name);
    for (const auto& name : names) {
        jobs::LaneLoad load;
        load.provider = name;
        for (const auto& l : loads)
            if (l.provider == name) load = l;
        s.lanes.push_back(lane_view(load, state_of(name), s.daemons, s.now));
    }
    apply_budget_holds(s.lanes, store.budget_holds(), s.daemons);
    const bool alive = s.daemon_alive();
    for (const auto& p : store.batch_progress(batch_)) {
        const bool final = p.final();
        if (!batch_ && final && !seen_open_.count(p.name)) {
            ++s.final_hidden;
            continue;
        }
        if (!final) seen_open_.insert(p.name);
        jobs::BatchTimes t;
        if (auto it = started_.find(p.name); it != started_.end()) t.started_at = it->second;
        if (t.started_at <= 0 || final) {
            auto read = store.batch_times(p.name);
            t = read;
            if (t.started_at > 0) started_[p.name] = t.started_at;
        }
        s.batches.push_back(batch_view(p, t, s.now, s.lanes, alive));
    }
    return s;
}

}  // namespace imgbatch::daemon::cli
