// The daemons table: registration (one daemon per database unless asked), heartbeats, stops.
#include "jobs/store_impl.hpp"

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

void Store::heartbeat(std::string_view owner, double now, std::string_view local_pause) {
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "UPDATE daemons SET heartbeat_at = ?, local_pause = ?, stopped_at = NULL "
        "WHERE owner = ?");
    q->bind(1, now);
    bind_text_or_null(*q, 2, std::string(local_pause));
    q->bind(3, std::string(owner));
    q->exec();
    txn.commit();
}

void Store::daemon_stopped(std::string_view owner, double now) {
    auto txn = impl_->write_txn();
    auto q = impl_->prep(
        "UPDATE daemons SET stopped_at = ?, local_pause = NULL WHERE owner = ? "
        "AND stopped_at IS NULL");
    q->bind(1, now);
    q->bind(2, std::string(owner));
    q->exec();
    txn.commit();
}

}  // namespace imgbatch::jobs
