#include "daemon/engine/db_worker.hpp"
#include "daemon/logfmt.hpp"

#include <SQLiteCpp/Exception.h>
#include <spdlog/spdlog.h>

#include <sqlite3.h>

#include <algorithm>

namespace imgbatch::daemon {

namespace {

template <class H>
struct CompleteItem : DbWorker::Item {
    CompleteItem(jobs::Completion c, H h) : comp(std::move(c)), handler(std::move(h)) {}
    void run(jobs::Store&) override {}
    jobs::Completion* completion() override { return &comp; }
    void finish(std::exception_ptr ep, bool ok) override {
        auto ex = boost::asio::get_associated_executor(handler);
        boost::asio::post(ex, [h = std::move(handler), ep, ok]() mutable { std::move(h)(ep, ok); });
    }
    jobs::Completion comp;
    H handler;
};

struct PostItem : DbWorker::Item {
    explicit PostItem(std::function<void(jobs::Store&)> f) : fn(std::move(f)) {}
    void run(jobs::Store& store) override {
        try {
            fn(store);
        } catch (const std::exception& e) {
            spdlog::error("event=db_error error={}", q(e.what()));
        }
    }
    std::function<void(jobs::Store&)> fn;
};

// Errors that are about the database as a whole (another program holds the write lock, the
// disk is full, an I/O error): every completion of a group would meet them, so the group is
// retried as it is. Any other error may belong to one completion (a constraint, a file that
// cannot be renamed): the group is then split so that it cannot sink the others.
bool whole_database_error(std::exception_ptr ep) {
    try {
        std::rethrow_exception(ep);
    } catch (const SQLite::Exception& e) {
        switch (e.getErrorCode()) {
            case SQLITE_BUSY:
            case SQLITE_LOCKED:
            case SQLITE_NOMEM:
            case SQLITE_READONLY:
            case SQLITE_IOERR:
            case SQLITE_FULL:
            case SQLITE_CANTOPEN:
            case SQLITE_PROTOCOL:
                return true;
            default:
                return false;
        }
    } catch (...) {
        return false;
    }
}

std::string what_of(std::exception_ptr ep) {
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

std::string request_ids(const std::vector<jobs::Completion*>& comps) {
    std::string ids;
    for (const auto* c : comps) {
        if (!ids.empty()) ids += ',';
        ids += std::to_string(c->request_id);
        if (ids.size() > 200) return ids + ",...";
    }
    return ids;
}

}  // namespace

DbWorker::DbWorker(const std::string& db_path, FileHooks hooks, RetryOptions retry)
    : store_(std::make_unique<jobs::Store>(db_path)), hooks_(std::move(hooks)), retry_(retry) {
    thread_ = std::thread([this] { thread_main(); });
}

DbWorker::DbWorker(const std::string& db_path, FileHooks hooks)
    : DbWorker(db_path, std::move(hooks), RetryOptions{}) {}

DbWorker::~DbWorker() {
    stop();
}

void DbWorker::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::size_t DbWorker::groups() const {
    std::lock_guard lock(mutex_);
    return groups_;
}

std::size_t DbWorker::completions() const {
    std::lock_guard lock(mutex_);
    return completions_;
}

std::size_t DbWorker::failed_commits() const {
    std::lock_guard lock(mutex_);
    return failed_commits_;
}

std::size_t DbWorker::held() const {
    std::lock_guard lock(mutex_);
    return held_count_;
}

boost::asio::awaitable<bool> DbWorker::complete(jobs::Completion&& c) {
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                       void(std::exception_ptr, bool)>(
        [this](auto handler, jobs::Completion comp) {
            using H = decltype(handler);
            enqueue(std::make_unique<CompleteItem<H>>(std::move(comp), std::move(handler)));
        },
        boost::asio::use_awaitable, std::move(c));
}

void DbWorker::post(std::function<void(jobs::Store&)> fn) {
    enqueue(std::make_unique<PostItem>(std::move(fn)));
}

void DbWorker::enqueue(std::unique_ptr<Item> item) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(std::move(item));
    }
    cv_.notify_one();
}

void DbWorker::thread_main() {
    using Clock = std::chrono::steady_clock;
    std::deque<std::unique_ptr<Item>> work;
    std::optional<Clock::time_point> stop_deadline;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            auto due = [this] {
                auto now = Clock::now();
                return std::any_of(held_.begin(), held_.end(),
                                   [now](const Held& h) { return h.retry_at <= now; });
            };
            auto ready = [&] { return stopping_ || !queue_.empty() || due(); };
            busy_.store(false, std::memory_order_relaxed);
            if (held_.empty()) {
                cv_.wait(lock, ready);
            } else {
                auto next =
                    std::min_element(held_.begin(), held_.end(), [](const Held& a, const Held& b) {
                        return a.retry_at < b.retry_at;
                    })->retry_at;
                cv_.wait_until(lock, next, ready);
            }
            if (stopping_ && !stop_deadline) stop_deadline = Clock::now() + retry_.stop_wait;
            if (stopping_ && queue_.empty()) {
                if (held_.empty()) break;  // stopping and drained
                if (Clock::now() >= *stop_deadline) {
                    lock.unlock();
                    give_up_held();
                    break;
                }
                // Keep retrying what is held until the deadline.
                lock.unlock();
                std::this_thread::sleep_until(
                    std::min(*stop_deadline, Clock::now() + retry_.first_delay));
                lock.lock();
            }
            work.swap(queue_);
            busy_.store(true, std::memory_order_relaxed);
        }
        // Held groups whose time has come, each in its own transaction (one that keeps
        // failing must not hold back new completions).
        auto now = Clock::now();
        std::vector<Held> due_now;
        for (auto it = held_.begin(); it != held_.end();) {
            if (it->retry_at <= now || (stopping_ && work.empty())) {
                {
                    std::lock_guard lock(mutex_);
                    held_count_ -= it->items.size();
                }
                due_now.push_back(std::move(*it));
                it = held_.erase(it);
            } else {
                ++it;
            }
        }
        for (auto& h : due_now) {
            apply_group(std::move(h.items), h.failures, h.delay);
            steps_.fetch_add(1, std::memory_order_relaxed);
        }
        // Items asked for first (claims), then the new completions in one transaction, then
        // the other items in order.
        for (auto& item : work) {
            if (!item || !item->first) continue;
            item->run(*store_);
            item.reset();
            steps_.fetch_add(1, std::memory_order_relaxed);
        }
        Group group;
        for (auto& item : work)
            if (item && item->completion()) group.push_back(std::move(item));
        if (!group.empty()) {
            apply_group(std::move(group));
            steps_.fetch_add(1, std::memory_order_relaxed);
        }
        for (auto& item : work) {
            if (!item) continue;
            item->run(*store_);
            steps_.fetch_add(1, std::memory_order_relaxed);
        }
        work.clear();
    }
}

Histogram DbWorker::commit_seconds() const {
    std::lock_guard lock(mutex_);
    return commit_seconds_;
}

std::vector<double> DbWorker::commit_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string DbWorker::try_apply(Group& group, bool& per_item) {
    std::vector<jobs::Completion> comps;
    comps.reserve(group.size());
    for (auto& item : group) comps.push_back(std::move(*item->completion()));
    std::vector<jobs::Completion*> placed;
    std::function<void(jobs::Completion&)> place;
    if (hooks_.place)
        place = [this, &placed](jobs::Completion& c) {
            placed.push_back(&c);  // before: a failing place undoes its own renames
            hooks_.place(c);
        };
    std::exception_ptr ep;
    std::vector<bool> results;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        results = store_->apply(comps, place, hooks_.sync);
    } catch (...) {
        ep = std::current_exception();
    }
    if (ep) {
        // Nothing was recorded: the renamed files go back to their temporary names and every
        // completion goes back to its item, as it was, for the next try.
        if (hooks_.unplace)
            for (auto* c : placed) hooks_.unplace(*c);
        for (std::size_t i = 0; i < group.size(); ++i)
            *group[i]->completion() = std::move(comps[i]);
        per_item = !whole_database_error(ep);
        std::lock_guard lock(mutex_);
        ++failed_commits_;
        return what_of(ep);
    }
    {
        std::lock_guard lock(mutex_);
        ++groups_;
        completions_ += comps.size();
        commit_seconds_.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    for (std::size_t i = 0; i < comps.size(); ++i) {
        bool ok = i < results.size() && results[i];
        if (!ok) {
            spdlog::warn("event=stale_completion request={} attempt={} note={}",
                         comps[i].request_id, comps[i].attempt_no,
                         q("its lease was lost: the request was requeued or finished elsewhere"));
            if (hooks_.discard) hooks_.discard(comps[i]);
        }
        group[i]->finish(nullptr, ok);
    }
    return {};
}

void DbWorker::apply_group(Group group, int failures, std::chrono::milliseconds delay) {
    bool per_item = false;
    std::string error = try_apply(group, per_item);
    if (error.empty()) {
        if (failures > 0)
            spdlog::info("event=commit_recovered completions={} tries={}", group.size(),
                         failures + 1);
        return;
    }
    std::vector<jobs::Completion*> comps;
    for (auto& item : group) comps.push_back(item->completion());
    auto next = delay.count() == 0 ? retry_.first_delay : std::min(delay * 2, retry_.max_delay);
    spdlog::error(
        "event=commit_failed completions={} requests={} tries={} retry_in_ms={} error={} "
        "note={}",
        group.size(), request_ids(comps), failures + 1, next.count(), q(error),
        q("the images stay staged and the commit is retried"));
    if (per_item && group.size() > 1) {
        // The error may belong to one completion: each alone, now, so that one cannot sink
        // the others.
        for (auto& item : group) {
            Group one;
            one.push_back(std::move(item));
            bool alone_per_item = false;
            std::string e = try_apply(one, alone_per_item);
            if (!e.empty()) {
                spdlog::error(
                    "event=commit_failed completions=1 requests={} tries={} retry_in_ms={} "
                    "error={}",
                    one[0]->completion()->request_id, failures + 1, next.count(), q(e));
                hold(std::move(one), failures + 1, next);
            }
        }
        return;
    }
    hold(std::move(group), failures + 1, next);
}

void DbWorker::hold(Group group, int failures, std::chrono::milliseconds delay) {
    {
        std::lock_guard lock(mutex_);
        held_count_ += group.size();
    }
    held_.push_back(
        Held{std::move(group), std::chrono::steady_clock::now() + delay, delay, failures});
}

void DbWorker::give_up_held() {
    for (auto& h : held_) {
        std::vector<jobs::Completion*> comps;
        for (auto& item : h.items) comps.push_back(item->completion());
        spdlog::critical(
            "event=completions_unrecorded completions={} requests={} note={}", h.items.size(),
            request_ids(comps),
            q("the database stayed unwritable until the stop: their staged files are left in "
              "place and the requests go back to the queue when their leases expire"));
        {
            std::lock_guard lock(mutex_);
            held_count_ -= h.items.size();
        }
        for (auto& item : h.items)
            item->finish(std::make_exception_ptr(
                             std::runtime_error("stopped before the completion could be recorded")),
                         false);
    }
    held_.clear();
}

}  // namespace imgbatch::daemon
