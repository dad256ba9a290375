// Claim + complete cost against the queue size: the claim walks the partial index
// requests_claim, so a round should cost the same with 10k and 1M queued requests.
// Also times status (stats) on the full table and one 100k-item enqueue.
// Usage: bench_claim_bench [rounds]   (default 200; the databases live in a temp dir)
//        bench_claim_bench enqueue    (only the 100k-item enqueue)
#include <SQLiteCpp/Transaction.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "jobs/store.hpp"

using namespace imgbatch::jobs;
using Clock = std::chrono::steady_clock;

namespace {

double us_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// rows queued requests of provider p1 (one per job, three priorities) plus the ones the rounds
// will consume, so that at least rows stay queued throughout; one transaction.
void fill(Store& s, int rows) {
    SQLite::Transaction txn(s.db(), SQLite::TransactionBehavior::IMMEDIATE);
    s.db().exec("INSERT INTO batches(name) VALUES ('bench')");
    s.db().exec(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " +
        std::to_string(rows) +
        ") INSERT INTO jobs(batch_id, state, prompt, model, provider, n, priority) "
        "SELECT 1, 'queued', 'a watercolor lighthouse number ' || x, 'gpt-image-2', 'p1', 1, "
        "x % 3 FROM c");
    s.db().exec(
        "INSERT INTO requests(job_id, seq, first_index, provider, n, priority) "
        "SELECT id, 0, 0, provider, 1, priority FROM jobs");
    txn.commit();
}

constexpr int kLimit = 50;
constexpr int kWarmup = 10;

struct Result {
    double claim_median = 0, median = 0, p95 = 0;
};

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// rounds of claim(p1, 50) + apply (one image each), after warm-up rounds.
Result measure(Store& s, int rounds) {
    const std::string owner = "bench-owner";
    std::vector<double> claim_us, round_us;
    for (int round = -kWarmup; round < rounds; ++round) {
        const double now = unix_now();
        const auto t0 = Clock::now();
        auto claimed = s.claim("p1", owner, kLimit, now, 60);
        const double claimed_us = us_since(t0);
        std::vector<Completion> done;
        done.reserve(claimed.size());
        for (const auto& r : claimed) {
            Completion c;
            c.request_id = r.request_id;
            c.attempt_no = r.attempt_no;
            c.owner = owner;
            c.started_at = now;
            c.finished_at = now;
            OutputRecord o;
            o.idx = r.first_index;
            o.path = "out/bench/" + std::to_string(r.job_id) + "-0.png";
            o.bytes = 1000;
            o.sha256 = std::string(64, '0');
            o.mime = "image/png";
            c.outputs.push_back(o);
            c.count_attempt = true;
            done.push_back(std::move(c));
        }
        s.apply(done);
        if (claimed.size() != static_cast<std::size_t>(kLimit)) std::abort();  // queue ran dry
        if (round >= 0) {
            claim_us.push_back(claimed_us);
            round_us.push_back(us_since(t0));
        }
    }
    return {percentile(claim_us, 0.5), percentile(round_us, 0.5), percentile(round_us, 0.95)};
}

// Wall and CPU milliseconds of one enqueue of items new jobs (with keys) into a new database.
std::pair<double, double> enqueue_ms(const std::filesystem::path& dir, int items) {
    Store s((dir / "enqueue.db").string());
    std::vector<EnqueueItem> v(static_cast<std::size_t>(items));
    for (int i = 0; i < items; ++i) {
        auto& it = v[static_cast<std::size_t>(i)];
        it.spec.prompt = "a watercolor lighthouse number " + std::to_string(i);
        it.spec.model = "gpt-image-2";
        it.spec.key = "key-" + std::to_string(i);
        it.spec.params["size"] = "1024x1024";
        it.provider = "p1";
        it.plan.push_back({0, 0, 1});
    }
    const auto cpu0 = std::clock();
    const auto t0 = Clock::now();
    s.enqueue("bench", v);
    return {us_since(t0) / 1000,
            1000.0 * static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC};
}

}  // namespace

int main(int argc, char** argv) {
    const bool enqueue_only = argc > 1 && std::string(argv[1]) == "enqueue";
    const int rounds = argc > 1 && !enqueue_only ? std::max(1, std::atoi(argv[1])) : 200;
    std::string tmpl = (std::filesystem::temp_directory_path() / "imgbatch-bench-XXXXXX");
    if (!mkdtemp(tmpl.data())) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::filesystem::path dir = tmpl;
    if (enqueue_only) {
        const auto [wall, cpu] = enqueue_ms(dir, 100'000);
        std::printf("enqueue of 100000 items: %.0f ms wall, %.0f ms CPU\n", wall, cpu);
        std::filesystem::remove_all(dir);
        return 0;
    }
    std::printf("claim(p1, %d) + apply (1 image each): %d rounds; WAL\n", kLimit, rounds);
    std::printf(
        "synchronous=FULL is what imgbatch runs with (one fsync per commit);\n"
        "NORMAL leaves the fsync out to show the cost of the statements alone.\n\n");
    std::printf("%-7s %10s %16s %16s %12s\n", "sync", "queued", "claim median us",
                "round median us", "round p95 us");
    std::map<std::string, std::vector<Result>> results;
    std::vector<double> stats_ms;
    for (int rows : {10'000, 1'000'000}) {
        Store s((dir / ("q" + std::to_string(rows) + ".db")).string());
        fill(s, rows + 2 * (rounds + kWarmup) * kLimit);
        s.db().exec("ANALYZE");
        for (const char* sync : {"FULL", "NORMAL"}) {
            s.db().exec(std::string("PRAGMA synchronous = ") + sync);
            const auto r = measure(s, rounds);
            results[sync].push_back(r);
            std::printf("%-7s %10d %16.0f %16.0f %12.0f\n", sync, rows, r.claim_median, r.median,
                        r.p95);
        }
        const auto t0 = Clock::now();
        s.stats(std::nullopt, unix_now());
        stats_ms.push_back(us_since(t0) / 1000);
    }
    for (const auto& [sync, r] : results)
        std::printf("ratio 1M/10k, round median, %s: %.2f\n", sync.c_str(),
                    r[1].median / r[0].median);
    std::printf("stats(): %.1f ms at 10k jobs, %.1f ms at 1M jobs\n", stats_ms[0], stats_ms[1]);
    const auto [wall, cpu] = enqueue_ms(dir, 100'000);
    std::printf("enqueue of 100000 items: %.0f ms wall, %.0f ms CPU\n", wall, cpu);
    std::filesystem::remove_all(dir);
    return 0;
}
