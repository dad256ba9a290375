// Read-only queries: stats, job lists and details, export, batch names.
#include <boost/json/parse.hpp>

#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {

namespace {

constexpr const char* kJobColumns =
    "SELECT j.id, j.key, b.name, j.state, j.prompt, j.model, j.provider, j.params, j.metadata, "
    "j.error, j.n, j.priority, j.images_done, j.created_at, j.updated_at, j.finished_at "
    "FROM jobs j LEFT JOIN batches b ON b.id = j.batch_id";

JobRow read_job(SQLite::Statement& q) {
    JobRow r;
    r.id = q.getColumn(0).getInt64();
    r.key = text(q, 1);
    r.batch = text(q, 2);
    r.state = text(q, 3);
    r.prompt = text(q, 4);
    r.model = text(q, 5);
    r.provider = text(q, 6);
    r.params_json = text(q, 7);
    r.metadata_json = text(q, 8);
    r.error = text(q, 9);
    r.n = q.getColumn(10).getInt();
    r.priority = q.getColumn(11).getInt();
    r.images_done = q.getColumn(12).getInt();
    r.created_at = q.getColumn(13).getDouble();
    r.updated_at = q.getColumn(14).getDouble();
    r.finished_at = q.getColumn(15).getDouble();  // NULL reads as 0
    return r;
}

constexpr const char* kOutputColumns =
    "SELECT idx, path, bytes, sha256, mime, width, height, revised_prompt FROM outputs "
    "WHERE job_id = ? ORDER BY idx";

std::vector<OutputRecord> read_outputs(StoreDb& impl, std::int64_t job_id) {
    std::vector<OutputRecord> out;
    auto q = impl.prep(kOutputColumns);
    q->bind(1, job_id);
    while (q->executeStep()) {
        OutputRecord o;
        o.idx = q->getColumn(0).getInt();
        o.path = text(*q, 1);
        o.bytes = q->getColumn(2).getInt64();
        o.sha256 = text(*q, 3);
        o.mime = text(*q, 4);
        o.width = q->getColumn(5).getInt();
        o.height = q->getColumn(6).getInt();
        o.revised_prompt = text(*q, 7);
        out.push_back(std::move(o));
    }
    return out;
}

// The job's attempts count and last error (see JobRow).
void read_summary(StoreDb& impl, JobRow& job) {
    {
        auto q =
            impl.prep("SELECT COUNT(*) FROM attempts WHERE job_id = ? AND outcome <> 'returned'");
        q->bind(1, job.id);
        q->executeStep();
        job.attempts = q->getColumn(0).getInt();
    }
    if (job.state == "rejected") {
        job.last_error = Error{ErrorClass::invalid_request, "rejected", 0, job.error, std::nullopt};
    } else if (job.state != "succeeded") {
        auto q = impl.prep(
            "SELECT error_class, error_code, http_status, message FROM attempts "
            "WHERE job_id = ? AND error_class IS NOT NULL ORDER BY id DESC LIMIT 1");
        q->bind(1, job.id);
        if (q->executeStep()) {
            Error e;
            e.cls = error_class_from(text(*q, 0)).value_or(ErrorClass::network);
            e.code = text(*q, 1);
            e.http_status = q->getColumn(2).getInt();
            e.message = text(*q, 3);
            job.last_error = std::move(e);
        }
    }
}

// Adds (count, n, images_done) of one state row to the totals.
void count_state(Stats& st, std::int64_t& remaining, const std::string& state, std::int64_t count,
                 std::int64_t n, std::int64_t done) {
    st.jobs_by_state[state] += count;
    st.jobs += count;
    if (state == "rejected" || state == "cancelled") return;
    st.images_wanted += n;
    st.images_done += done;
    if (state == "pending" || state == "queued" || state == "running")
        remaining += std::max<std::int64_t>(0, n - done);
}

// Fills the job counts of st (of one batch, or of all jobs) and returns the images still
// wanted by unfinished jobs. Covered by the indexes jobs_state / jobs_batch_state: no table
// rows are read.
// Every state at 0: a listed state with no job shows as 0, not as missing.
void zero_states(Stats& st) {
    for (auto s : {JobState::pending, JobState::queued, JobState::running, JobState::succeeded,
                   JobState::failed, JobState::blocked, JobState::cancelled, JobState::rejected})
        st.jobs_by_state[std::string(to_string(s))] = 0;
}

std::int64_t count_states(StoreDb& impl, Stats& st, std::optional<std::int64_t> bid) {
    zero_states(st);
    auto q = impl.prep(bid ? "SELECT state, COUNT(*), SUM(n), SUM(images_done) FROM jobs "
                             "WHERE batch_id = ? GROUP BY state"
                           : "SELECT state, COUNT(*), SUM(n), SUM(images_done) FROM jobs "
                             "GROUP BY state");
    if (bid) q->bind(1, *bid);
    std::int64_t remaining = 0;
    while (q->executeStep())
        count_state(st, remaining, text(*q, 0), q->getColumn(1).getInt64(),
                    q->getColumn(2).getInt64(), q->getColumn(3).getInt64());
    return remaining;
}

}  // namespace

std::optional<Stats> Store::finished_batch(const std::string& batch) {
    auto bid = impl_->find_batch(batch);
    if (!bid) return std::nullopt;
    {
        auto q = impl_->prep(
            "SELECT EXISTS(SELECT 1 FROM jobs WHERE batch_id = ?1 AND state = 'pending') "
            "OR EXISTS(SELECT 1 FROM jobs WHERE batch_id = ?1 AND state = 'queued') "
            "OR EXISTS(SELECT 1 FROM jobs WHERE batch_id = ?1 AND state = 'running')");
        q->bind(1, *bid);
        q->executeStep();
        if (q->getColumn(0).getInt() != 0) return std::nullopt;
    }
    Stats st;
    count_states(*impl_, st, bid);
    if (st.jobs == 0) return std::nullopt;
    return st;
}

// The attempt that produced output o, its column: the request's last attempt with images that
// finished before o was recorded (a request topped up over several attempts has several; the
// next attempt starts only once the outputs of the last one are committed, and apply() records
// an attempt as finished no later than its outputs). One attempts_request lookup.
namespace {
std::string producing_attempt(std::string_view column) {
    return "(SELECT x." + std::string(column) +
           " FROM attempts x WHERE x.request_id = o.request_id AND x.images > 0 "
           "AND x.finished_at <= o.created_at ORDER BY x.id DESC LIMIT 1)";
}
}  // namespace

std::string_view recent_images_by_provider_sql(bool by_batch) {
    // Each image counts under the provider of the attempt that produced it: a request moved to
    // another provider (batch_retry_direct) leaves the images of its earlier provider there.
    // Without an attempt row (outputs inserted by another program): the request's provider.
    // Driven by outputs_created, whose window is short, also for one batch (+: not by the
    // batch's jobs, which may be millions).
    static const std::string select = "SELECT coalesce(" + producing_attempt("provider") +
                                      ", (SELECT r.provider FROM requests r WHERE r.id = "
                                      "o.request_id)), COUNT(*) FROM outputs o ";
    static const std::string all = select + "WHERE o.created_at >= ? GROUP BY 1";
    static const std::string batch = select +
                                     "JOIN jobs j ON j.id = o.job_id "
                                     "WHERE o.created_at >= ? AND +j.batch_id = ? GROUP BY 1";
    return by_batch ? batch : all;
}

std::string_view recent_images_sql(bool by_batch) {
    // By outputs_created, also for one batch (as above).
    return by_batch ? "SELECT COUNT(*) FROM outputs o JOIN jobs j ON j.id = o.job_id "
                      "WHERE o.created_at >= ? AND +j.batch_id = ?"
                    : "SELECT COUNT(*) FROM outputs WHERE created_at >= ?";
}

std::string_view first_recent_start_sql(bool by_batch) {
    // When the first image recorded in the window was asked for: the start of the attempt
    // that produced it (its own time without one). The first row of outputs_created.
    static const std::string select =
        "SELECT coalesce(" + producing_attempt("started_at") + ", o.created_at) FROM outputs o ";
    static const std::string all = select + "WHERE o.created_at >= ? ORDER BY o.created_at LIMIT 1";
    static const std::string batch = select +
                                     "JOIN jobs j ON j.id = o.job_id WHERE o.created_at >= ? "
                                     "AND +j.batch_id = ? ORDER BY o.created_at LIMIT 1";
    return by_batch ? batch : all;
}

namespace {
constexpr double kRateWindowS = 300;  // status's throughput: the last 5 minutes
}  // namespace

Stats Store::stats(const std::optional<std::string>& batch, double now) {
    Stats st;
    std::optional<std::int64_t> bid;
    if (batch) {
        bid = impl_->find_batch(*batch);
        if (!bid) {
            zero_states(st);
            return st;
        }
    }
    auto bind_batch = [&](Stmt& q, int index) {
        if (bid) q->bind(index, *bid);
    };

    std::int64_t remaining = count_states(*impl_, st, bid);
    {
        // The images of the last 5 minutes, over the time since the first of them was asked
        // for when that is later (a run that started 3 s ago), at least a second.
        auto q = impl_->prep(std::string(recent_images_sql(bid.has_value())));
        q->bind(1, now - kRateWindowS);
        bind_batch(q, 2);
        q->executeStep();
        const double images = q->getColumn(0).getDouble();
        double start = now - kRateWindowS;
        if (images > 0) {
            auto f = impl_->prep(std::string(first_recent_start_sql(bid.has_value())));
            f->bind(1, now - kRateWindowS);
            bind_batch(f, 2);
            if (f->executeStep()) start = std::max(start, f->getColumn(0).getDouble());
        }
        st.rate_window_s = std::max(1.0, now - start);
        st.images_per_min = images * 60.0 / st.rate_window_s;
    }
    if (st.images_per_min > 0) st.eta_s = static_cast<double>(remaining) * 60.0 / st.images_per_min;

    {
        auto q = impl_->prep(bid ? "SELECT r.provider, COUNT(*) FROM requests r "
                                   "JOIN jobs j ON j.id = r.job_id "
                                   "WHERE r.state = 'queued' AND j.batch_id = ? GROUP BY r.provider"
                                 : "SELECT provider, COUNT(*) FROM requests "
                                   "WHERE state = 'queued' GROUP BY provider");
        bind_batch(q, 1);
        while (q->executeStep()) st.providers[text(*q, 0)].queued = q->getColumn(1).getInt64();
    }
    {
        auto q = impl_->prep(bid ? "SELECT r.provider, COUNT(*) FROM requests r "
                                   "JOIN jobs j ON j.id = r.job_id WHERE r.state = 'running' "
                                   "AND r.lease_until > ? AND j.batch_id = ? GROUP BY r.provider"
                                 : "SELECT provider, COUNT(*) FROM requests "
                                   "WHERE state = 'running' AND lease_until > ? GROUP BY provider");
        q->bind(1, now);
        bind_batch(q, 2);
        while (q->executeStep()) st.providers[text(*q, 0)].claimed = q->getColumn(1).getInt64();
        // The calls sent: what the live daemons report, at most what is claimed here.
        const auto calls = calls_in_flight(now);
        for (auto& [name, p] : st.providers) {
            auto it = calls.find(name);
            p.in_flight = std::min(p.claimed, it == calls.end() ? 0 : it->second);
        }
    }
    {
        auto q = impl_->prep(std::string(recent_images_by_provider_sql(bid.has_value())));
        q->bind(1, now - 60);
        bind_batch(q, 2);
        while (q->executeStep())
            st.providers[text(*q, 0)].images_last_min = q->getColumn(1).getInt64();
    }
    return st;
}

std::vector<JobRow> Store::list_jobs(const JobFilter& filter) {
    std::string sql = std::string(kJobColumns) + " WHERE 1 = 1";
    append_filter(sql, filter);
    sql += " ORDER BY j.id";
    if (filter.limit > 0) sql += " LIMIT " + std::to_string(filter.limit);
    SQLite::Statement q(impl_->db, sql);
    int index = 1;
    bind_filter(q, index, filter);
    std::vector<JobRow> out;
    while (q.executeStep()) out.push_back(read_job(q));
    for (auto& job : out) read_summary(*impl_, job);
    return out;
}

std::optional<JobDetail> Store::job_detail(std::int64_t job_id) {
    JobDetail d;
    {
        auto q = impl_->prep(std::string(kJobColumns) + " WHERE j.id = ?");
        q->bind(1, job_id);
        if (!q->executeStep()) return std::nullopt;
        d.job = read_job(*q);
    }
    read_summary(*impl_, d.job);
    {
        auto q = impl_->prep(
            "SELECT id, seq, first_index, n, images_done, attempts, rate_limited, moderation, "
            "state, provider, not_before FROM requests WHERE job_id = ? ORDER BY seq");
        q->bind(1, job_id);
        while (q->executeStep()) {
            RequestRow r;
            r.id = q->getColumn(0).getInt64();
            r.seq = q->getColumn(1).getInt();
            r.first_index = q->getColumn(2).getInt();
            r.n = q->getColumn(3).getInt();
            r.images_done = q->getColumn(4).getInt();
            r.attempts = q->getColumn(5).getInt();
            r.rate_limited = q->getColumn(6).getInt();
            r.moderation = q->getColumn(7).getInt();
            r.state = text(*q, 8);
            r.provider = text(*q, 9);
            r.not_before = q->getColumn(10).getDouble();
            d.requests.push_back(std::move(r));
        }
    }
    {
        auto q = impl_->prep(
            "SELECT id, request_id, attempt_no, images, http_status, provider, outcome, "
            "error_class, error_code, message, usage, started_at, finished_at, duration_ms, "
            "billed, cost_usd, cost_basis FROM attempts WHERE job_id = ? ORDER BY id");
        q->bind(1, job_id);
        while (q->executeStep()) {
            AttemptRow a;
            a.id = q->getColumn(0).getInt64();
            a.request_id = q->getColumn(1).getInt64();
            a.attempt_no = q->getColumn(2).getInt();
            a.images = q->getColumn(3).getInt();
            a.http_status = q->getColumn(4).getInt();
            a.provider = text(*q, 5);
            a.outcome = text(*q, 6);
            a.error_class = text(*q, 7);
            a.error_code = text(*q, 8);
            a.message = text(*q, 9);
            a.usage_json = text(*q, 10);
            a.started_at = q->getColumn(11).getDouble();
            a.finished_at = q->getColumn(12).getDouble();
            a.duration_ms = q->getColumn(13).getInt64();
            if (!q->getColumn(14).isNull()) a.billed = q->getColumn(14).getInt() != 0;
            a.cost_usd = optional_double(*q, 15);
            a.cost_basis = text(*q, 16);
            d.attempts.push_back(std::move(a));
        }
    }
    d.outputs = read_outputs(*impl_, job_id);
    return d;
}

void Store::export_jobs(const std::optional<std::string>& batch,
                        const std::function<void(const ExportRecord&)>& sink) {
    std::optional<std::int64_t> bid;
    if (batch) {
        bid = impl_->find_batch(*batch);
        if (!bid) return;
    }
    // While the outer statement runs, the connection holds one read snapshot, so the
    // per-job statements see the same database state.
    auto jobs = impl_->prep(std::string(kJobColumns) +
                            (bid ? " WHERE j.batch_id = ? ORDER BY j.id" : " ORDER BY j.id"));
    if (bid) jobs->bind(1, *bid);
    while (jobs->executeStep()) {
        ExportRecord rec;
        rec.job = read_job(*jobs);
        rec.images = read_outputs(*impl_, rec.job.id);
        read_summary(*impl_, rec.job);
        rec.attempts = rec.job.attempts;
        rec.last_error = rec.job.last_error;
        {
            auto q = impl_->prep(
                "SELECT usage FROM attempts WHERE job_id = ? AND usage IS NOT NULL ORDER BY id");
            q->bind(1, rec.job.id);
            while (q->executeStep()) {
                boost::json::error_code ec;
                auto v = boost::json::parse(text(*q, 0), ec);
                if (!ec && v.is_object()) add_usage(rec.usage, v.get_object());
            }
        }
        {
            auto q = impl_->prep(
                "SELECT total(cost_usd) FILTER (WHERE billed = 1), "
                "count(cost_usd) FILTER (WHERE billed = 1), "
                "count(*) FILTER (WHERE billed = 1 AND cost_usd IS NULL), "
                "count(*) FILTER (WHERE billed IS NULL AND outcome != 'returned') "
                "FROM attempts WHERE job_id = ?");
            q->bind(1, rec.job.id);
            if (q->executeStep()) {
                rec.unpriced = q->getColumn(2).getInt64();
                // Nothing known to have been billed: 0 only when every attempt is known.
                if (q->getColumn(1).getInt64() > 0 ||
                    (rec.unpriced == 0 && q->getColumn(3).getInt64() == 0))
                    rec.cost_usd = q->getColumn(0).getDouble();
            }
        }
        sink(rec);
    }
}

void add_usage(boost::json::object& total, const boost::json::object& more) {
    for (const auto& [key, value] : more) {
        auto* have = total.if_contains(key);
        if (value.is_object()) {
            if (!have) have = &total.emplace(key, boost::json::object{}).first->value();
            if (have->is_object()) add_usage(have->get_object(), value.get_object());
        } else if (value.is_int64() || value.is_uint64()) {
            std::int64_t add = value.to_number<std::int64_t>();
            if (!have)
                total.emplace(key, add);
            else if (have->is_int64())
                have->get_int64() += add;
            else if (have->is_double())
                have->get_double() += static_cast<double>(add);
        } else if (value.is_double()) {
            if (!have)
                total.emplace(key, value.get_double());
            else if (have->is_number())
                *have = have->to_number<double>() + value.get_double();
        }
    }
}

std::vector<std::string> Store::batch_names() {
    std::vector<std::string> out;
    auto q = impl_->prep("SELECT name FROM batches ORDER BY id");
    while (q->executeStep()) out.push_back(text(*q, 0));
    return out;
}

bool BatchProgress::final() const {
    return count(JobState::pending) + count(JobState::queued) + count(JobState::running) == 0;
}

std::int64_t BatchProgress::count(JobState s) const {
    auto it = jobs_by_state.find(std::string(to_string(s)));
    return it == jobs_by_state.end() ? 0 : it->second;
}

std::vector<BatchProgress> Store::batch_progress(const std::optional<std::string>& batch) {
    std::vector<BatchProgress> out;
    std::map<std::int64_t, std::size_t> index;  // batch id -> out
    {
        auto q = impl_->prep(batch ? "SELECT id, name, created_at FROM batches WHERE name = ?"
                                   : "SELECT id, name, created_at FROM batches ORDER BY id");
        if (batch) q->bind(1, *batch);
        while (q->executeStep()) {
            BatchProgress p;
            p.name = text(*q, 1);
            p.created_at = q->getColumn(2).getDouble();
            for (auto st :
                 {JobState::pending, JobState::queued, JobState::running, JobState::succeeded,
                  JobState::failed, JobState::blocked, JobState::cancelled, JobState::rejected})
                p.jobs_by_state[std::string(to_string(st))] = 0;
            index[q->getColumn(0).getInt64()] = out.size();
            out.push_back(std::move(p));
        }
    }
    if (out.empty()) return out;
    const bool one = batch.has_value();
    const std::int64_t bid = one ? index.begin()->first : 0;
    {
        // Covered by the index jobs_batch_state.
        auto q = impl_->prep(one ? "SELECT batch_id, state, COUNT(*), SUM(n), SUM(images_done) "
                                   "FROM jobs WHERE batch_id = ? GROUP BY batch_id, state"
                                 : "SELECT batch_id, state, COUNT(*), SUM(n), SUM(images_done) "
                                   "FROM jobs WHERE batch_id IS NOT NULL "
                                   "GROUP BY batch_id, state");
        if (one) q->bind(1, bid);
        while (q->executeStep()) {
            auto it = index.find(q->getColumn(0).getInt64());
            if (it == index.end()) continue;  // a batch created since the first query
            Stats st;
            std::int64_t remaining = 0;
            count_state(st, remaining, text(*q, 1), q->getColumn(2).getInt64(),
                        q->getColumn(3).getInt64(), q->getColumn(4).getInt64());
            auto& p = out[it->second];
            for (const auto& [state, n] : st.jobs_by_state) p.jobs_by_state[state] += n;
            p.jobs += st.jobs;
            p.images_done += st.images_done;
            p.images_wanted += st.images_wanted;
            p.images_remaining += remaining;
        }
    }
    {
        auto q = impl_->prep(one ? "SELECT j.batch_id, COUNT(*) FROM requests r "
                                   "JOIN jobs j ON j.id = r.job_id WHERE r.state = 'queued' "
                                   "AND r.attempts > 0 AND j.batch_id = ? GROUP BY j.batch_id"
                                 : "SELECT j.batch_id, COUNT(*) FROM requests r "
                                   "JOIN jobs j ON j.id = r.job_id WHERE r.state = 'queued' "
                                   "AND r.attempts > 0 GROUP BY j.batch_id");
        if (one) q->bind(1, bid);
        while (q->executeStep()) {
            auto it = index.find(q->getColumn(0).getInt64());
            if (it != index.end()) out[it->second].retrying = q->getColumn(1).getInt64();
        }
    }
    return out;
}

BatchTimes Store::batch_times(std::string_view batch) {
    BatchTimes t;
    auto bid = impl_->find_batch(std::string(batch));
    if (!bid) return t;
    {
        auto q = impl_->prep(
            "SELECT MIN(a.started_at) FROM jobs j JOIN attempts a ON a.job_id = j.id "
            "WHERE j.batch_id = ?");
        q->bind(1, *bid);
        if (q->executeStep()) t.started_at = q->getColumn(0).getDouble();  // NULL reads as 0
    }
    {
        auto q = impl_->prep("SELECT MAX(finished_at) FROM jobs WHERE batch_id = ?");
        q->bind(1, *bid);
        if (q->executeStep()) t.finished_at = q->getColumn(0).getDouble();
    }
    return t;
}

std::vector<LaneLoad> Store::lane_loads(double now) {
    std::map<std::string, LaneLoad> by_name;
    {
        auto q = impl_->prep(
            "SELECT provider, COUNT(*), SUM(not_before <= ?), MIN(not_before) FROM requests "
            "WHERE state = 'queued' GROUP BY provider");
        q->bind(1, now);
        while (q->executeStep()) {
            auto& l = by_name[text(*q, 0)];
            l.queued = q->getColumn(1).getInt64();
            l.due = q->getColumn(2).getInt64();
            l.next_due = q->getColumn(3).getDouble();
        }
    }
    {
        auto q = impl_->prep(
            "SELECT provider, COUNT(*) FROM requests WHERE state = 'running' AND lease_until > ? "
            "GROUP BY provider");
        q->bind(1, now);
        while (q->executeStep()) by_name[text(*q, 0)].claimed = q->getColumn(1).getInt64();
        const auto calls = calls_in_flight(now);
        for (auto& [name, l] : by_name) {
            auto it = calls.find(name);
            l.in_flight = std::min(l.claimed, it == calls.end() ? 0 : it->second);
        }
    }
    std::vector<LaneLoad> out;
    for (auto& [name, l] : by_name) {
        l.provider = name;
        out.push_back(std::move(l));
    }
    return out;
}

void Store::export_images(const std::optional<std::string>& batch,
                          const std::function<void(const ImageRecord&)>& sink) {
    std::optional<std::int64_t> bid;
    if (batch) {
        bid = impl_->find_batch(*batch);
        if (!bid) return;
    }
    // The attempt that produced each image (producing_attempt).
    // kJobColumns' 16 columns, then the output's and the attempt's.
    std::string sql = kJobColumns;
    sql.insert(sql.find(" FROM jobs j"),
               ", o.idx, o.path, o.bytes, o.sha256, o.mime, o.width, o.height, "
               "o.revised_prompt, o.created_at, a.provider, a.started_at, a.duration_ms, "
               "a.attempt_no, a.cost_usd, a.images");
    sql +=
        " JOIN outputs o ON o.job_id = j.id"
        " LEFT JOIN attempts a ON a.id = " +
        producing_attempt("id");
    sql += bid ? " WHERE j.batch_id = ? ORDER BY j.id, o.idx" : " ORDER BY j.id, o.idx";
    auto s = impl_->prep(sql);
    if (bid) s->bind(1, *bid);
    while (s->executeStep()) {
        ImageRecord r;
        r.job = read_job(*s);
        auto& o = r.image;
        o.idx = s->getColumn(16).getInt();
        o.path = text(*s, 17);
        o.bytes = s->getColumn(18).getInt64();
        o.sha256 = text(*s, 19);
        o.mime = text(*s, 20);
        o.width = s->getColumn(21).getInt();
        o.height = s->getColumn(22).getInt();
        o.revised_prompt = text(*s, 23);
        r.recorded_at = s->getColumn(24).getDouble();
        r.provider = text(*s, 25);
        if (r.provider.empty()) r.provider = r.job.provider;
        r.started_at = s->getColumn(26).getDouble();
        r.duration_ms = s->getColumn(27).getInt64();
        r.attempt_no = s->getColumn(28).getInt();
        if (!s->getColumn(29).isNull() && s->getColumn(30).getInt() > 0)
            r.cost_usd = s->getColumn(29).getDouble() / s->getColumn(30).getInt();
        sink(r);
    }
}

}  // namespace imgbatch::jobs
