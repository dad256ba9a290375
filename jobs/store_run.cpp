// Running requests: claims with leases, lease renewal and expiry, completions (group commit)
// and the job state that follows from its requests.
#include <algorithm>
#include <cmath>

#include "jobs/store_impl.hpp"

namespace imgbatch::jobs {

namespace {

constexpr const char* kClaimSql =
    "UPDATE requests SET state = 'running', lease_owner = ?1, lease_until = ?2, "
    "attempt_no = attempt_no + 1 "
    "WHERE id IN (SELECT id FROM requests WHERE state = 'queued' AND provider = ?3 "
    "AND not_before <= ?4 ORDER BY priority DESC, id LIMIT ?5) "
    "RETURNING id, job_id, seq, first_index, n, images_done, attempt_no, attempts, "
    "rate_limited, moderation, provider, timeouts, provider_failures, priority";

constexpr const char* kLeaseExpiredMessage =
    "the daemon holding the lease stopped before the answer was recorded";

const char* outcome_of(const Completion& c) {
    if (!c.error && c.next == Next::done) return "ok";
    if (c.error && c.error->cls == ErrorClass::partial) return "partial";
    if (c.next == Next::returned) return "returned";
    return "error";
}

std::string job_state(StoreDb& impl, std::int64_t job_id) {
    auto q = impl.prep("SELECT state FROM jobs WHERE id = ?");
    q->bind(1, job_id);
    return q->executeStep() ? text(*q, 0) : std::string();
}

}  // namespace

std::string_view claim_sql() {
    return kClaimSql;
}

void StoreDb::settle_job(std::int64_t job_id, double now, std::optional<int> images_added,
                         const std::string* known_state) {
    const std::string current = known_state ? *known_state : job_state(*this, job_id);
    auto add_images_only = [&] {
        if (!images_added) return;
        auto q = prep("UPDATE jobs SET images_done = images_done + ?, updated_at = ? WHERE id = ?");
        q->bind(1, *images_added);
        q->bind(2, now);
        q->bind(3, job_id);
        q->exec();
    };
    if (current == "cancelled" || current.empty()) return add_images_only();
    std::int64_t total = 0, running = 0, queued = 0, succeeded = 0, failed = 0, blocked = 0;
    {
        // One pass over the job's requests (its (job_id, seq) index), no GROUP BY sorter.
        auto q = prep(
            "SELECT count(*), total(state = 'running'), total(state = 'queued'), "
            "total(state = 'succeeded'), total(state = 'failed'), total(state = 'blocked') "
            "FROM requests WHERE job_id = ?");
        q->bind(1, job_id);
        if (q->executeStep()) {
            total = q->getColumn(0).getInt64();
            running = q->getColumn(1).getInt64();
            queued = q->getColumn(2).getInt64();
            succeeded = q->getColumn(3).getInt64();
            failed = q->getColumn(4).getInt64();
            blocked = q->getColumn(5).getInt64();
        }
    }
    if (total == 0) return add_images_only();
    if (running > 0 || queued > 0) {
        // A completion always writes the row (images_done, updated_at); otherwise only a
        // change of state does.
        auto q = prep(
            "UPDATE jobs SET state = ?1, images_done = images_done + ?5, updated_at = ?2 "
            "WHERE id = ?3 AND (state <> ?4 OR ?6)");
        const char* state = running > 0 ? "running" : "queued";
        q->bind(1, state);
        q->bind(2, now);
        q->bind(3, job_id);
        q->bind(4, state);
        q->bind(5, images_added.value_or(0));
        q->bind(6, images_added ? 1 : 0);
        q->exec();
        return;
    }
    const char* state = succeeded == total ? "succeeded"
                        : failed > 0       ? "failed"
                        : blocked > 0      ? "blocked"
                                           : "cancelled";
    std::string error;
    if (failed > 0 || blocked > 0) {
        auto q = prep(
            "SELECT last_error_message FROM requests WHERE job_id = ? "
            "AND state IN ('failed', 'blocked') ORDER BY seq DESC LIMIT 1");
        q->bind(1, job_id);
        if (q->executeStep()) error = text(*q, 0);
    }
    auto q = prep(
        "UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ?, "
        "images_done = images_done + ? WHERE id = ?");
    q->bind(1, state);
    bind_text_or_null(*q, 2, error);
    q->bind(3, now);
    q->bind(4, now);
    q->bind(5, images_added.value_or(0));
    q->bind(6, job_id);
    q->exec();
}

std::vector<ClaimedRequest> Store::claim(std::string_view provider, std::string_view owner,
                                         int limit, double now, double lease_s, int provider_cap) {
    return claim_except(provider, owner, limit, now, lease_s, provider_cap, {});
}

std::vector<ClaimedRequest> Store::claim_except(std::string_view provider, std::string_view owner,
                                                int limit, double now, double lease_s,
                                                int provider_cap,
                                                const std::vector<std::string>& skip_batches) {
    std::vector<ClaimedRequest> out;
    if (limit <= 0) return out;
    auto txn = impl_->write_txn();
    if (provider_cap > 0) {
        // Inside the write transaction: daemons sharing the database claim one at a time,
        // so together they never hold more than the cap.
        auto q =
            impl_->prep("SELECT count(*) FROM requests WHERE state = 'running' AND provider = ?");
        q->bind(1, std::string(provider));
        q->executeStep();
        limit = std::min(limit, provider_cap - q->getColumn(0).getInt());
        if (limit <= 0) return out;
    }
    std::vector<int> priority;
    {
        std::string sql = kClaimSql;
        if (!skip_batches.empty()) {
            // Requests of the batches skipped (held by their budget) stay queued.
            std::string names;
            for (std::size_t i = 0; i < skip_batches.size(); ++i)
                names += (i ? ", ?" : "?") + std::to_string(6 + i);
            const std::string skip =
                " AND NOT EXISTS (SELECT 1 FROM jobs j JOIN batches b ON b.id = j.batch_id "
                "WHERE j.id = requests.job_id AND b.name IN (" +
                names + "))";
            sql.insert(sql.find(" ORDER BY priority"), skip);
        }
        auto q = impl_->prep(sql);
        q->bind(1, std::string(owner));
        q->bind(2, now + lease_s);
        q->bind(3, std::string(provider));
        q->bind(4, now);
        q->bind(5, limit);
        for (std::size_t i = 0; i < skip_batches.size(); ++i)
            q->bind(static_cast<int>(6 + i), skip_batches[i]);
        while (q->executeStep()) {
            ClaimedRequest r;
            r.request_id = q->getColumn(0).getInt64();
            r.job_id = q->getColumn(1).getInt64();
            r.seq = q->getColumn(2).getInt();
            r.first_index = q->getColumn(3).getInt();
            r.n = q->getColumn(4).getInt();
            r.images_done = q->getColumn(5).getInt();
            r.attempt_no = q->getColumn(6).getInt();
            r.attempts = q->getColumn(7).getInt();
            r.rate_limited = q->getColumn(8).getInt();
            r.moderation = q->getColumn(9).getInt();
            r.provider = text(*q, 10);
            r.timeouts = q->getColumn(11).getInt();
            r.provider_failures = q->getColumn(12).getInt();
            priority.push_back(q->getColumn(13).getInt());
            out.push_back(std::move(r));
        }
    }
    // RETURNING rows come in no promised order: restore the claim order.
    std::vector<std::size_t> order(out.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (priority[a] != priority[b]) return priority[a] > priority[b];
        return out[a].request_id < out[b].request_id;
    });
    std::vector<ClaimedRequest> sorted;
    sorted.reserve(out.size());
    for (auto i : order) sorted.push_back(std::move(out[i]));

    for (auto& r : sorted) {
        { fill_job(*impl_, r); }
        auto q = impl_->prep(
            "UPDATE jobs SET state = 'running', updated_at = ? WHERE id = ? AND state = 'queued'");
        q->bind(1, now);
        q->bind(2, r.job_id);
        q->exec();
    }
    txn.commit();
    return sorted;
}

int Store::renew_leases(std::string_view owner, const std::vector<LeasedAttempt>& attempts,
                        double until) {
    auto txn = impl_->write_txn();
    int changed = 0;
    {
        auto q = impl_->prep(
            "UPDATE requests SET lease_until = ? WHERE id = ? AND attempt_no = ? "
            "AND state = 'running' AND lease_owner = ?");
        for (const auto& a : attempts) {
            q->reset();
            q->bind(1, until);
            q->bind(2, a.request_id);
            q->bind(3, a.attempt_no);
            q->bind(4, std::string(owner));
            changed += q->exec();
        }
    }
    txn.commit();
    return changed;
}

int Store::unclaim(std::string_view owner, const std::vector<LeasedAttempt>& attempts, double now) {
    auto txn = impl_->write_txn();
    int changed = impl_->unclaim_rows(owner, attempts, now);
    txn.commit();
    return changed;
}

int StoreDb::unclaim_rows(std::string_view owner, const std::vector<LeasedAttempt>& attempts,
                          double now) {
    int changed = 0;
    for (const auto& a : attempts) {
        std::int64_t job_id = 0;
        {
            auto q = prep(
                "SELECT job_id FROM requests WHERE id = ? AND attempt_no = ? "
                "AND state = 'running' AND lease_owner = ?");
            q->bind(1, a.request_id);
            q->bind(2, a.attempt_no);
            q->bind(3, std::string(owner));
            if (!q->executeStep()) continue;
            job_id = q->getColumn(0).getInt64();
        }
        const bool cancelled = job_state(*this, job_id) == "cancelled";
        {
            auto q = prep(
                "UPDATE requests SET state = ?, lease_owner = NULL, lease_until = NULL, "
                "attempt_no = attempt_no - 1 WHERE id = ?");
            q->bind(1, cancelled ? "cancelled" : "queued");
            q->bind(2, a.request_id);
            changed += q->exec();
        }
        settle_job(job_id, now);
    }
    return changed;
}

namespace {

// Binds owner, billed, cost_usd, cost_basis and the five token columns from index on.
void bind_cost(SQLite::Statement& q, int index, const Completion& c) {
    bind_text_or_null(q, index, c.owner);
    if (c.billed)
        q.bind(index + 1, *c.billed ? 1 : 0);
    else
        q.bind(index + 1);
    if (c.cost_usd) {
        q.bind(index + 2, *c.cost_usd);
        q.bind(index + 3,
               c.cost_estimated ? std::string("worst_case") : std::string(to_string(c.cost_basis)));
    } else {
        q.bind(index + 2);
        q.bind(index + 3);
    }
    const auto& u = c.usage;
    const std::int64_t tokens[] = {u.input_text_tokens, u.input_image_tokens,
                                   u.cached_text_tokens + u.cached_image_tokens,
                                   u.output_image_tokens, u.output_text_tokens};
    for (int i = 0; i < 5; ++i) {
        if (u.reported)
            q.bind(index + 4 + i, tokens[i]);
        else
            q.bind(index + 4 + i);
    }
}

// Running requests whose daemon is gone go back to the queue; the lost attempt is recorded
// ('error', network/lease_expired) and counted. `select` yields id, job_id, attempt_no,
// provider of those requests. Runs inside the caller's write transaction.
int requeue_lost(StoreDb& impl, SQLite::Statement& select, double now) {
    struct Lost {
        std::int64_t id, job_id;
        int attempt_no;
        std::string provider;
    };
    std::vector<Lost> lost;
    while (select.executeStep())
        lost.push_back({select.getColumn(0).getInt64(), select.getColumn(1).getInt64(),
                        select.getColumn(2).getInt(), text(select, 3)});
    for (const auto& l : lost) {
        {
            auto q = impl.prep(
                "INSERT INTO attempts(request_id, job_id, attempt_no, provider, started_at, "
                "finished_at, duration_ms, outcome, images, error_class, error_code, "
                "http_status, message) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, 'error', 0, 'network', 'lease_expired', 0, ?)");
            q->bind(1, l.id);
            q->bind(2, l.job_id);
            q->bind(3, l.attempt_no);
            q->bind(4, l.provider);
            q->bind(5, now);
            q->bind(6, now);
            q->bind(7, kLeaseExpiredMessage);
            q->exec();
        }
        const bool cancelled = job_state(impl, l.job_id) == "cancelled";
        {
            auto q = impl.prep(
                "UPDATE requests SET state = ?, attempts = attempts + 1, lease_owner = NULL, "
                "lease_until = NULL, last_error_class = 'network', "
                "last_error_code = 'lease_expired', last_http_status = 0, "
                "last_error_message = ? WHERE id = ?");
            q->bind(1, cancelled ? "cancelled" : "queued");
            q->bind(2, kLeaseExpiredMessage);
            q->bind(3, l.id);
            q->exec();
        }
        impl.settle_job(l.job_id, now);
    }
    return static_cast<int>(lost.size());
}

}  // namespace

int Store::requeue_expired(double now) {
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "SELECT id, job_id, attempt_no, provider FROM requests "
        "WHERE state = 'running' AND lease_until < ?");
    q->bind(1, now);
    int n = requeue_lost(*impl_, *q, now);
    txn.commit();
    return n;
}

int Store::requeue_owner(std::string_view owner, double now) {
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "SELECT id, job_id, attempt_no, provider FROM requests "
        "WHERE state = 'running' AND lease_owner = ?");
    q->bind(1, std::string(owner));
    int n = requeue_lost(*impl_, *q, now);
    txn.commit();
    return n;
}

std::vector<std::string> Store::lease_owners() {
    std::vector<std::string> owners;
    auto q = impl_->prep(
        "SELECT DISTINCT lease_owner FROM requests WHERE state = 'running' "
        "AND lease_owner IS NOT NULL");
    while (q->executeStep()) owners.push_back(text(*q, 0));
    return owners;
}

std::vector<bool> Store::apply(std::vector<Completion>& completions,
                               const std::function<void(Completion&)>& place_files,
                               const std::function<void()>& before_commit) {
    std::vector<bool> result(completions.size(), false);
    auto txn = impl_->write_txn();
    for (std::size_t i = 0; i < completions.size(); ++i) {
        auto& c = completions[i];
        std::int64_t job_id = 0;
        int n = 0, images_done = 0;
        double not_before = 0;
        std::string provider;
        {
            auto q = impl_->prep(
                "SELECT job_id, n, images_done, not_before, provider FROM requests "
                "WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempt_no = ?");
            q->bind(1, c.request_id);
            q->bind(2, c.owner);
            q->bind(3, c.attempt_no);
            // Stale: the lease expired and the request was requeued, claimed again, or done.
            if (!q->executeStep()) continue;
            job_id = q->getColumn(0).getInt64();
            n = q->getColumn(1).getInt();
            images_done = q->getColumn(2).getInt();
            not_before = q->getColumn(3).getDouble();
            provider = text(*q, 4);
        }
        if (place_files) place_files(c);  // throws (rolling everything back) if it cannot
        const double now = unix_now();

        int added = 0;
        {
            auto q = impl_->prep(
                "INSERT OR IGNORE INTO outputs(job_id, request_id, idx, path, bytes, sha256, "
                "mime, width, height, revised_prompt, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            for (const auto& o : c.outputs) {
                q->reset();
                q->bind(1, job_id);
                q->bind(2, c.request_id);
                q->bind(3, o.idx);
                q->bind(4, o.path);
                q->bind(5, o.bytes);
                q->bind(6, o.sha256);
                q->bind(7, o.mime);
                if (o.width > 0)
                    q->bind(8, o.width);
                else
                    q->bind(8);
                if (o.height > 0)
                    q->bind(9, o.height);
                else
                    q->bind(9);
                bind_text_or_null(*q, 10, o.revised_prompt);
                q->bind(11, now);
                added += q->exec();
            }
        }

        // No later than its outputs were recorded (a clock stepped back since the answer
        // came): the attempt that produced an output is found by that order (export, status).
        const double finished = c.finished_at > 0 ? std::min(c.finished_at, now) : now;
        const double started = c.started_at > 0 ? c.started_at : finished;
        {
            auto q = impl_->prep(
                "INSERT INTO attempts(request_id, job_id, attempt_no, provider, started_at, "
                "finished_at, duration_ms, outcome, images, error_class, error_code, "
                "http_status, message, usage, owner, billed, cost_usd, cost_basis, "
                "input_text_tokens, input_image_tokens, cached_input_tokens, "
                "output_image_tokens, output_text_tokens) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            q->bind(1, c.request_id);
            q->bind(2, job_id);
            q->bind(3, c.attempt_no);
            q->bind(4, provider);
            q->bind(5, started);
            q->bind(6, finished);
            q->bind(7, static_cast<std::int64_t>(
                           std::max(0.0, std::round((finished - started) * 1000))));
            q->bind(8, outcome_of(c));
            q->bind(9, static_cast<int>(c.outputs.size()));
            if (c.error) {
                q->bind(10, std::string(to_string(c.error->cls)));
                bind_text_or_null(*q, 11, c.error->code);
                q->bind(12, c.error->http_status);
                q->bind(13, c.error->message);
            } else {
                q->bind(10);
                q->bind(11);
                q->bind(12);
                q->bind(13);
            }
            bind_text_or_null(*q, 14, c.usage_json);
            bind_cost(*q, 15, c);
            q->exec();
        }

        images_done += added;
        const std::string job_now = job_state(*impl_, job_id);
        const bool cancelled = job_now == "cancelled";
        const char* state = "queued";
        switch (c.next) {
            case Next::done:
                state = images_done >= n ? "succeeded" : "failed";
                break;
            case Next::retry:
                not_before = c.not_before;
                break;
            case Next::returned:
                not_before = now;
                break;
            case Next::fail:
                state = "failed";
                break;
            case Next::block:
                state = "blocked";
                break;
        }
        if (cancelled && (c.next == Next::retry || c.next == Next::returned)) state = "cancelled";
        std::optional<Error> err = c.error;
        if (!err && c.next == Next::done && images_done < n)
            err = Error{
                ErrorClass::partial, "", 0,
                "produced " + std::to_string(images_done) + " of " + std::to_string(n) + " images",
                std::nullopt};
        {
            auto q = impl_->prep(
                "UPDATE requests SET state = ?1, images_done = images_done + ?2, "
                "attempts = attempts + ?3, rate_limited = rate_limited + ?4, "
                "moderation = moderation + ?5, timeouts = timeouts + ?12, "
                "provider_failures = provider_failures + ?13, not_before = ?6, lease_owner = NULL, "
                "lease_until = NULL, "
                "last_error_class = CASE WHEN ?7 IS NULL THEN last_error_class ELSE ?7 END, "
                "last_error_code = CASE WHEN ?7 IS NULL THEN last_error_code ELSE ?8 END, "
                "last_http_status = CASE WHEN ?7 IS NULL THEN last_http_status ELSE ?9 END, "
                "last_error_message = CASE WHEN ?7 IS NULL THEN last_error_message ELSE ?10 END "
                "WHERE id = ?11");
            q->bind(1, state);
            q->bind(2, added);
            q->bind(3, c.count_attempt ? 1 : 0);
            q->bind(4, c.count_rate_limit ? 1 : 0);
            q->bind(5, c.count_moderation ? 1 : 0);
            q->bind(6, not_before);
            if (err) {
                q->bind(7, std::string(to_string(err->cls)));
                bind_text_or_null(*q, 8, err->code);
                q->bind(9, err->http_status);
                q->bind(10, err->message);
            }
            q->bind(11, c.request_id);
            q->bind(12, c.count_timeout ? 1 : 0);
            q->bind(13, c.count_provider_failure ? 1 : 0);
            q->exec();
        }
        if (c.next == Next::retry && !c.requeue_provider.empty() &&
            std::string_view(state) == "queued")
            move_to_provider(*impl_, c.request_id, job_id, c.requeue_provider);
        // The job's images_done and state in one UPDATE of its row.
        impl_->settle_job(job_id, now, added, &job_now);
        result[i] = true;
    }
    if (before_commit) before_commit();
    txn.commit();
    return result;
}

void fill_job(StoreDb& impl, ClaimedRequest& r) {
    auto q = impl.prep(
        "SELECT j.prompt, j.model, j.params, j.key, b.name, j.created_at FROM jobs j "
        "LEFT JOIN batches b ON b.id = j.batch_id WHERE j.id = ?");
    q->bind(1, r.job_id);
    if (!q->executeStep()) return;
    r.prompt = text(*q, 0);
    r.model = text(*q, 1);
    r.params_json = text(*q, 2);
    r.key = text(*q, 3);
    r.batch = text(*q, 4);
    r.created_at = q->getColumn(5).getDouble();
}

}  // namespace imgbatch::jobs
