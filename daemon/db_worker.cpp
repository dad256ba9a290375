#include "daemon/db_worker.hpp"

#include <spdlog/spdlog.h>

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
            spdlog::error("event=db_error error=\"{}\"", e.what());
        }
    }
    std::function<void(jobs::Store&)> fn;
};

}  // namespace

DbWorker::DbWorker(const std::string& db_path, FileHooks hooks)
    : store_(std::make_unique<jobs::Store>(db_path)), hooks_(std::move(hooks)) {
    thread_ = std::thread([this] { thread_main(); });
}

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
    std::deque<std::unique_ptr<Item>> work;
    std::vector<std::unique_ptr<Item>> group;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) break;  // stopping and drained
            work.swap(queue_);
        }
        // Completions first, all in one transaction; then the other items in order.
        for (auto& item : work)
            if (item->completion()) group.push_back(std::move(item));
        if (!group.empty()) apply_group(group);
        for (auto& item : work)
            if (item) item->run(*store_);
        work.clear();
        group.clear();
    }
}

void DbWorker::apply_group(std::vector<std::unique_ptr<Item>>& group) {
    std::vector<jobs::Completion> comps;
    comps.reserve(group.size());
    for (auto& item : group) comps.push_back(std::move(*item->completion()));
    std::exception_ptr ep;
    std::vector<bool> results;
    try {
        // Every rename of the group is durable before the commit, or nothing is committed.
        results = store_->apply(comps, hooks_.place, hooks_.sync);
    } catch (const std::exception& e) {
        spdlog::error("event=db_error op=apply completions={} error=\"{}\"", comps.size(),
                      e.what());
        ep = std::current_exception();
    }
    {
        std::lock_guard lock(mutex_);
        ++groups_;
        completions_ += comps.size();
    }
    for (std::size_t i = 0; i < comps.size(); ++i) {
        bool ok = !ep && i < results.size() && results[i];
        if (!ok && hooks_.discard) hooks_.discard(comps[i]);
        group[i]->finish(ep, ok);
    }
}

}  // namespace imgbatch::daemon
