#pragma once
// Shared set-up for the daemon integration tests (faults, limits, recovery): a temporary
// directory with a config pointing at an `imgbatch sim`, helpers to enqueue job lines, run
// the daemon, read and write the database, and check the recorded image files.
#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

namespace imgbatch::test {

// JSON string literal for simple test text.
inline std::string json_str(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

inline std::string json_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_str(items[i]);
    return out + "]";
}

// One provider entry. extra: more members, e.g. R"("timeout_s": 1)".
inline std::string provider_json(const std::string& name, const std::string& api,
                                 const std::string& base_url,
                                 const std::vector<std::string>& models,
                                 const std::string& extra = "") {
    std::string s = "{\"name\": " + json_str(name) + ", \"api\": " + json_str(api) +
                    ", \"base_url\": " + json_str(base_url) + ", \"models\": " + json_list(models);
    // Defaults unless extra sets them (a key may appear only once).
    for (const char* d :
         {"\"max_concurrency\": 4", "\"timeout_s\": 20", "\"connect_timeout_s\": 5"}) {
        std::string k(d);
        if (extra.find(k.substr(0, k.find(':'))) == std::string::npos) s += ", " + k;
    }
    if (!extra.empty()) s += ", " + extra;
    return s + "}";
}

// Providers of each API style on a sim.
inline std::string openai_provider(const Sim& sim, const std::string& name = "oa",
                                   const std::string& extra = "") {
    return provider_json(name, "openai", sim.url() + "/v1",
                         {"gpt-image-2", "gpt-image-1", "dall-e-3"}, extra);
}
inline std::string google_provider(const Sim& sim, const std::string& name = "gg",
                                   const std::string& extra = "") {
    return provider_json(name, "google", sim.url() + "/v1beta",
                         {"imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001"}, extra);
}
inline std::string chat_provider(const Sim& sim, const std::string& name = "chat",
                                 const std::string& extra = "") {
    return provider_json(name, "openai-chat", sim.url() + "/v1", {"sora_image"}, extra);
}

// Small delays so that retries take milliseconds.
inline std::string fast_retry(int max_attempts = 4, int moderation_retries = 2) {
    return "{\"max_attempts\": " + std::to_string(max_attempts) +
           ", \"base_delay_s\": 0.05, \"max_delay_s\": 0.5, \"moderation_retries\": " +
           std::to_string(moderation_retries) + ", \"auth_probe_s\": 3600}";
}

// One JSONL job line.
inline std::string job_line(const std::string& key, const std::string& prompt,
                            const std::string& model, int n, const std::string& extra = "") {
    std::string s = "{\"key\": " + json_str(key) + ", \"prompt\": " + json_str(prompt) +
                    ", \"model\": " + json_str(model) + ", \"n\": " + std::to_string(n);
    if (!extra.empty()) s += ", " + extra;
    return s + "}\n";
}

inline std::string sha256_file(const std::string& path) {
    std::string data = read_file(path);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 15];
    }
    return out;
}

// A temporary directory with imgbatch.json, the database and the output directory.
class DaemonEnv {
  public:
    explicit DaemonEnv(const std::vector<std::string>& providers,
                       const std::string& retry = fast_retry(), double shutdown_grace_s = 10,
                       const std::string& extra_top = "")
        : db(dir.file("imgbatch.db")), out(dir.file("out")), config(dir.file("imgbatch.json")) {
        std::string p;
        for (size_t i = 0; i < providers.size(); ++i) p += (i ? ",\n    " : "") + providers[i];
        std::string text = "{\n  \"database\": " + json_str(db) +
                           ",\n  \"output_dir\": " + json_str(out) + ",\n  \"retry\": " + retry +
                           ",\n  \"shutdown_grace_s\": " + std::to_string(shutdown_grace_s) +
                           ",\n  \"poll_interval_s\": 0.1,\n";
        if (!extra_top.empty()) text += "  " + extra_top + ",\n";
        text += "  \"providers\": [\n    " + p + "\n  ]\n}\n";
        write_file(config, text);
    }

    // imgbatch --config FILE args...
    RunResult cli(const std::vector<std::string>& args, const std::string& stdin_data = "",
                  double timeout_s = 60) const {
        std::vector<std::string> all{"--config", config};
        all.insert(all.end(), args.begin(), args.end());
        return run(all, stdin_data, {}, dir.path(), timeout_s);
    }

    // Enqueues JSONL lines from stdin into batch; requires success.
    void enqueue(const std::string& jsonl, const std::string& batch = "b") const {
        RunResult r = cli({"enqueue", "-", "--batch", batch}, jsonl);
        INFO("enqueue stderr: " << r.err);
        REQUIRE(r.code == 0);
    }

    // `run --until-idle`; requires exit 0 within timeout_s.
    RunResult run_until_idle(double timeout_s = 90) const {
        RunResult r = cli({"run", "--until-idle"}, "", timeout_s);
        INFO("run stderr (tail): " << tail(r.err));
        REQUIRE(r.code == 0);
        return r;
    }

    std::unique_ptr<Process> start_run(const std::vector<std::string>& extra = {}) const {
        std::vector<std::string> args{"--config", config, "run"};
        args.insert(args.end(), extra.begin(), extra.end());
        return std::make_unique<Process>(args, std::vector<std::string>{}, dir.path());
    }

    std::string value(const std::string& sql) const { return sql_value(db, sql); }
    std::vector<std::string> rows(const std::string& sql) const { return sql_rows(db, sql); }
    long long number(const std::string& sql) const {
        std::string v = value(sql);
        return v.empty() ? -1 : std::stoll(v);
    }
    void exec(const std::string& sql) const {
        SQLite::Database d(db, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        d.exec("PRAGMA busy_timeout=10000");
        d.exec(sql);
    }

    std::string job_id(const std::string& key) const {
        std::string id = value("SELECT id FROM jobs WHERE key = " + sql_str(key));
        REQUIRE_MESSAGE(!id.empty(), "no job with key " << key);
        return id;
    }
    std::string job_state(const std::string& key) const {
        return value("SELECT state FROM jobs WHERE key = " + sql_str(key));
    }
    // Attempts of a job, oldest first, as "outcome|error_class|http_status" (the status only
    // for errors).
    std::vector<std::string> attempts(const std::string& key) const {
        return rows(
            "SELECT outcome, coalesce(error_class, ''), CASE WHEN error_class IS NULL THEN '' "
            "ELSE coalesce(http_status, 0) END FROM attempts WHERE job_id = " +
            job_id(key) + " ORDER BY id");
    }
    // Requests of a job in seq order as "state|n|images_done".
    std::vector<std::string> requests(const std::string& key) const {
        return rows("SELECT state, n, images_done FROM requests WHERE job_id = " + job_id(key) +
                    " ORDER BY seq");
    }
    // Sums of the request counters of a job: "attempts|rate_limited|moderation".
    std::string counters(const std::string& key) const {
        return rows(
                   "SELECT sum(attempts), sum(rate_limited), sum(moderation) FROM requests "
                   "WHERE job_id = " +
                   job_id(key))
            .at(0);
    }

    // The job has exactly n recorded outputs, indexes 0..n-1, unique paths under the output
    // directory named {key}-{idx}.png, every file present with its recorded size and sha256.
    void check_outputs(const std::string& key, int n) const {
        check_job_outputs(job_id(key), key, n);
    }
    // The same for a job without a key: files are named job-{job id}-{idx}.png (stem).
    void check_job_outputs(const std::string& id, const std::string& stem, int n) const {
        auto outs = rows("SELECT idx, path, bytes, sha256, mime FROM outputs WHERE job_id = " + id +
                         " ORDER BY idx");
        INFO("job " << id << " " << stem);
        REQUIRE(outs.size() == static_cast<size_t>(n));
        std::set<std::string> paths;
        for (int i = 0; i < n; ++i) {
            auto f = split(outs[i]);
            REQUIRE(f.size() == 5);
            CHECK(f[0] == std::to_string(i));
            CHECK(std::filesystem::path(f[1]).filename().string() ==
                  stem + "-" + std::to_string(i) + ".png");
            CHECK(f[4] == "image/png");
            paths.insert(f[1]);
            REQUIRE(std::filesystem::exists(f[1]));
            CHECK(std::to_string(std::filesystem::file_size(f[1])) == f[2]);
            CHECK(sha256_file(f[1]) == f[3]);
        }
        CHECK(paths.size() == static_cast<size_t>(n));
    }

    static std::string sql_str(const std::string& s) {
        std::string out = "'";
        for (char c : s) {
            if (c == '\'') out += '\'';
            out += c;
        }
        return out + "'";
    }
    static std::vector<std::string> split(const std::string& row, char sep = '|') {
        std::vector<std::string> f;
        size_t start = 0;
        for (;;) {
            size_t p = row.find(sep, start);
            f.push_back(row.substr(start, p - start));
            if (p == std::string::npos) break;
            start = p + 1;
        }
        return f;
    }
    static std::string tail(const std::string& s, size_t n = 4000) {
        return s.size() > n ? s.substr(s.size() - n) : s;
    }

    TempDir dir;
    std::string db, out, config;
};

}  // namespace imgbatch::test
