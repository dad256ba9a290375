#pragma once
// The DB thread: owns the jobs::Store (one SQLite connection) and runs work items from a
// queue. Completions are group-committed: every completion queued when the thread wakes goes
// into ONE Store::apply call. Results are handed back with asio::post to the executor of
// the waiting coroutine, so the network thread never blocks on SQLite.
#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "daemon/engine/histogram.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

class DbWorker {
  public:
    // Called on the DB thread around each group commit (see Store::apply):
    // - place(c): renames c's temporary files into place inside the transaction; throws if
    //   it cannot (c's files then stay staged under their temporary names);
    // - sync(): makes the renames of the group durable, just before the commit; throws if it
    //   cannot (the commit does not happen);
    // - unplace(c): the transaction did not commit: moves c's placed files back to their
    //   temporary names, so that the completion can be retried as it was;
    // - discard(c): removes the files of a stale completion (its lease was lost).
    struct FileHooks {
        std::function<void(jobs::Completion&)> place;
        std::function<void()> sync;
        std::function<void(const jobs::Completion&)> unplace;
        std::function<void(const jobs::Completion&)> discard;
    };

    // How completions that could not be committed (database locked past the busy timeout,
    // disk full, I/O error, a file that cannot be renamed) are retried: they stay staged and
    // are tried again after first_delay, doubling up to max_delay, until they are recorded or
    // found stale. stop() keeps trying for at most stop_wait.
    struct RetryOptions {
        std::chrono::milliseconds first_delay{250};
        std::chrono::milliseconds max_delay{10'000};
        std::chrono::milliseconds stop_wait{60'000};
    };

    // Opens the store on the calling thread (errors throw here) and starts the thread.
    DbWorker(const std::string& db_path, FileHooks hooks, RetryOptions retry);
    explicit DbWorker(const std::string& db_path, FileHooks hooks = {});
    // Drains the queue and joins the thread.
    ~DbWorker();
    DbWorker(const DbWorker&) = delete;
    DbWorker& operator=(const DbWorker&) = delete;

    // Runs fn(store) on the DB thread; the result (or its exception) comes back on the
    // awaiting coroutine's executor. R must not be void.
    // Pass fn as a named variable (std::move(fn)): GCC 12 destroys temporaries of a co_await
    // full-expression twice, so no lambda temporary may appear in the co_await expression.
    template <class R, class Fn>
    boost::asio::awaitable<R> call(Fn&& fn) {
        return call_item<R>(std::forward<Fn>(fn), false);
    }

    // Like call, but run ahead of the completions waiting for the next group commit (not of
    // a commit already under way): for a claim, which the provider's free slots wait for,
    // while a commit's fsyncs can wait a few milliseconds more.
    template <class R, class Fn>
    boost::asio::awaitable<R> call_first(Fn&& fn) {
        return call_item<R>(std::forward<Fn>(fn), true);
    }

    // Runs fn(store) on the DB thread and waits for it (start-up, tests; never on the
    // network thread while it serves requests). Exceptions are rethrown here.
    template <class Fn>
    auto call_sync(Fn fn) -> decltype(fn(std::declval<jobs::Store&>())) {
        using R = decltype(fn(std::declval<jobs::Store&>()));
        auto task = std::make_shared<std::packaged_task<R(jobs::Store&)>>(std::move(fn));
        auto fut = task->get_future();
        post([task](jobs::Store& st) { (*task)(st); });
        return fut.get();
    }

    // Applies c in the next group commit; true once applied, false if stale. A commit that
    // fails does not end this: c stays staged and is retried (see RetryOptions). Throws only
    // when the worker stops with c still unrecorded.
    boost::asio::awaitable<bool> complete(jobs::Completion&& c);

    // Fire and forget (errors are logged).
    void post(std::function<void(jobs::Store&)> fn);

    // Stops the thread after the queued items have run. Idempotent.
    void stop();

    // Number of apply calls and completions applied so far (for tests and logs); commits that
    // failed; completions waiting for a retry now.
    std::size_t groups() const;
    std::size_t completions() const;
    std::size_t failed_commits() const;
    std::size_t held() const;
    // How long the group commits that succeeded took (seconds), for metrics.
    Histogram commit_seconds() const;
    static std::vector<double> commit_buckets();

    // For the watchdog: steps the thread has finished (an item run, a group committed or
    // failed), and whether it is inside one now (false while it waits for work). A thread
    // that stays busy() with steps() unchanged is stuck.
    std::uint64_t steps() const { return steps_.load(std::memory_order_relaxed); }
    bool busy() const { return busy_.load(std::memory_order_relaxed); }

    struct Item {
        virtual ~Item() = default;
        virtual void run(jobs::Store& store) = 0;
        // Completion items: the completion, and the result of its group commit.
        virtual jobs::Completion* completion() { return nullptr; }
        virtual void finish(std::exception_ptr, bool) {}
        bool first = false;  // runs before the group commit it was queued with (call_first)
    };

  private:
    template <class R, class Fn>
    boost::asio::awaitable<R> call_item(Fn&& fn, bool first) {
        using F = std::decay_t<Fn>;
        return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                           void(std::exception_ptr, R)>(
            [this, first](auto handler, F f) {
                using H = decltype(handler);
                auto item = std::make_unique<CallItem<R, F, H>>(std::move(f), std::move(handler));
                item->first = first;
                enqueue(std::move(item));
            },
            boost::asio::use_awaitable, F(std::forward<Fn>(fn)));
    }

    template <class R, class Fn, class H>
    struct CallItem : Item {
        CallItem(Fn f, H h) : fn(std::move(f)), handler(std::move(h)) {}
        void run(jobs::Store& store) override {
            std::exception_ptr ep;
            R result{};
            try {
                result = fn(store);
            } catch (...) {
                ep = std::current_exception();
            }
            auto ex = boost::asio::get_associated_executor(handler);
            boost::asio::post(ex, [h = std::move(handler), ep, r = std::move(result)]() mutable {
                std::move(h)(ep, std::move(r));
            });
        }
        Fn fn;
        H handler;
    };

    using Group = std::vector<std::unique_ptr<Item>>;
    // A group whose commit failed, waiting for its next try.
    struct Held {
        Group items;
        std::chrono::steady_clock::time_point retry_at;
        std::chrono::milliseconds delay{0};
        int failures = 0;
    };

    void enqueue(std::unique_ptr<Item> item);
    void thread_main();
    // Tries to commit the group; on failure holds it (whole, or each completion alone when
    // the error may belong to one of them) for a later try.
    void apply_group(Group group, int failures = 0,
                     std::chrono::milliseconds delay = std::chrono::milliseconds(0));
    // One transaction for the group; returns the error text, or "" when it committed.
    std::string try_apply(Group& group, bool& per_item);
    void hold(Group group, int failures, std::chrono::milliseconds delay);
    void give_up_held();

    std::unique_ptr<jobs::Store> store_;
    FileHooks hooks_;
    RetryOptions retry_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Item>> queue_;
    bool stopping_ = false;
    std::size_t groups_ = 0;
    std::size_t completions_ = 0;
    std::size_t failed_commits_ = 0;
    std::size_t held_count_ = 0;
    Histogram commit_seconds_{commit_buckets()};
    std::vector<Held> held_;  // DB thread only
    std::atomic<std::uint64_t> steps_{0};
    std::atomic<bool> busy_{false};
    std::thread thread_;
};

}  // namespace imgbatch::daemon
