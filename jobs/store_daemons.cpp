// The daemons table: registration (one daemon per database unless asked), heartbeats, stops.
#include "jobs/store_impl.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace imgbatch::jobs {

namespace {

constexpr const char* kDaemonColumns =
    "owner, host, pid, started_at, heartbeat_at, coalesce(stopped_at, 0), multiple, "
    "coalesce(local_pause, '')";

DaemonRow read_daemon(SQLite::Statement& q) {
    DaemonRow d;
    d.owner = text(q, 0);
    d.host = text(q, 1);
    d.pid = q.getColumn(2).getInt64();
    d.started_at = q.getColumn(3).getDouble();
    d.heartbeat_at = q.getColumn(4).getDouble();
    d.stopped_at = q.getColumn(5).getDouble();
    d.multiple = q.getColumn(6).getInt() != 0;
    d.local_pause = text(q, 7);
    return d;
}

std::vector<DaemonRow> running_daemons(StoreDb& impl) {
    std::vector<DaemonRow> out;
    auto q = impl.prep(std::string("SELECT ") + kDaemonColumns +
                       " FROM daemons WHERE stopped_at IS NULL ORDER BY started_at");
    while (q->executeStep()) out.push_back(read_daemon(*q));
    return out;
}

}  // namespace

std::vector<DaemonRow> Store::running_daemons() {
    return jobs::running_daemons(*impl_);
}

std::optional<DaemonRow> Store::daemon(std::string_view owner) {
    auto q = impl_->prep(std::string("SELECT ") + kDaemonColumns + " FROM daemons WHERE owner = ?");
    q->bind(1, std::string(owner));
    if (!q->executeStep()) return std::nullopt;
    return read_daemon(*q);
}

std::vector<DaemonRow> Store::register_daemon(const DaemonRow& self, bool allow_multiple,
                                              const std::function<bool(const DaemonRow&)>& alive) {
    auto txn = impl_->write_txn();
    std::vector<DaemonRow> refused_by;
    for (auto& d : jobs::running_daemons(*impl_)) {
        if (d.owner == self.owner) continue;
        if (!alive(d)) {
            auto q = impl_->prep("UPDATE daemons SET stopped_at = ? WHERE owner = ?");
            q->bind(1, self.started_at);
            q->bind(2, d.owner);
            q->exec();
            continue;
        }
        // Several daemons share a database only when every one of them asked for it.
        if (!allow_multiple || !d.multiple) refused_by.push_back(d);
    }
    if (!refused_by.empty()) return refused_by;  // rolled back: nothing registered
    auto q = impl_->prep(
        "INSERT OR REPLACE INTO daemons(owner, host, pid, started_at, heartbeat_at, multiple) "
        "VALUES (?, ?, ?, ?, ?, ?)");
    q->bind(1, self.owner);
    q->bind(2, self.host);
    q->bind(3, self.pid);
    q->bind(4, self.started_at);
    q->bind(5, self.started_at);
    q->bind(6, allow_multiple ? 1 : 0);
    q->exec();
    txn.commit();
    return {};
}

void Store::heartbeat(std::string_view owner, double now, std::string_view local_pause,
                      const std::map<std::string, std::int64_t>* calls) {
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "UPDATE daemons SET heartbeat_at = ?1, local_pause = ?2, stopped_at = NULL, "
        "calls = CASE WHEN ?4 THEN ?5 ELSE calls END WHERE owner = ?3");
    q->bind(1, now);
    bind_text_or_null(*q, 2, std::string(local_pause));
    q->bind(3, std::string(owner));
    q->bind(4, calls ? 1 : 0);
    if (calls) {
        boost::json::object o;
        for (const auto& [provider, n] : *calls) o[provider] = n;
        q->bind(5, boost::json::serialize(o));
    }
    q->exec();
    txn.commit();
}

std::map<std::string, std::int64_t> Store::calls_in_flight(double now, double stale_s) {
    std::map<std::string, std::int64_t> out;
    std::vector<std::string> unreported;
    {
        auto q = impl_->prep(
            "SELECT owner, calls FROM daemons WHERE stopped_at IS NULL AND heartbeat_at > ?");
        q->bind(1, now - stale_s);
        while (q->executeStep()) {
            if (q->getColumn(1).isNull()) {
                unreported.push_back(text(*q, 0));
                continue;
            }
            boost::json::error_code ec;
            auto v = boost::json::parse(q->getColumn(1).getString(), ec);
            if (ec || !v.is_object()) {
                unreported.push_back(text(*q, 0));
                continue;
            }
            for (const auto& [provider, n] : v.get_object())
                if (n.is_int64()) out[std::string(provider)] += n.get_int64();
        }
    }
    // A daemon that does not report its calls: its claimed requests, as before version 9.
    for (const auto& owner : unreported) {
        auto q = impl_->prep(
            "SELECT provider, COUNT(*) FROM requests WHERE state = 'running' AND lease_owner = ? "
            "AND lease_until > ? GROUP BY provider");
        q->bind(1, owner);
        q->bind(2, now);
        while (q->executeStep()) out[text(*q, 0)] += q->getColumn(1).getInt64();
    }
    return out;
}

void Store::daemon_stopped(std::string_view owner, double now) {
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "UPDATE daemons SET stopped_at = ?, local_pause = NULL, calls = NULL WHERE owner = ? "
        "AND stopped_at IS NULL");
    q->bind(1, now);
    q->bind(2, std::string(owner));
    q->exec();
    txn.commit();
}

}  // namespace imgbatch::jobs
