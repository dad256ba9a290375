// HTTP faults through the real binary against `imgbatch sim`: interim 1xx answers, keep-alive
// connections the server drops, a close without an answer, compressed answers, an answer
// over max_response_bytes, a Latin-1 error page, one bad base64 image among good ones, and
// TLS certificates that fail verification.
// Every test counts the images the sim served against the images kept.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include "jobs/text.hpp"
#include "tests/daemon/tls_fixture.hpp"
#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;

namespace {

// The sim tags every PNG with its prompt in an iTXt chunk: keyword, NUL, compression flag and
// method, empty language tag and translated keyword, then the text.
bool image_is_for(const std::string& path, const std::string& prompt) {
    const std::string tag = std::string("iTXtprompt") + std::string(5, '\0') + prompt;
    const std::string bytes = read_file(path);
    return bytes.find(tag) != std::string::npos;
}

// Every output of the job is the sim's image for its own prompt.
void check_images_match(const DaemonEnv& env, const std::string& key, const std::string& prompt) {
    auto paths = env.rows("SELECT path FROM outputs WHERE job_id = " + env.job_id(key));
    REQUIRE_FALSE(paths.empty());
    for (const auto& path : paths) {
        INFO("job " << key << ", file " << path);
        CHECK(image_is_for(path, prompt));
    }
}

long long outputs_kept(const DaemonEnv& env) {
    return env.number("SELECT count(*) FROM outputs");
}

}  // namespace

TEST_CASE("http: interim 1xx answers are skipped; each job keeps the image of its own prompt") {
    for (int concurrency : {1, 3}) {
        INFO("max_concurrency " << concurrency);
        Sim sim;
        DaemonEnv env(
            {openai_provider(sim, "oa", "\"max_concurrency\": " + std::to_string(concurrency))});
        std::vector<std::string> prompts;
        std::string lines;
        for (int i = 0; i < 4; ++i) {
            prompts.push_back("picture number " + std::to_string(i) + " #fail=interim");
            lines += job_line("j" + std::to_string(i), prompts.back(), "gpt-image-2", 1);
        }
        env.enqueue(lines);
        env.run_until_idle();
        for (int i = 0; i < 4; ++i) {
            const std::string key = "j" + std::to_string(i);
            CHECK(env.job_state(key) == "succeeded");
            CHECK(env.attempts(key) == std::vector<std::string>{"ok||"});
            env.check_outputs(key, 1);
            check_images_match(env, key, prompts[static_cast<std::size_t>(i)]);
        }
        CHECK(sim.stat("images") == 4);
        CHECK(outputs_kept(env) == 4);
    }
}

TEST_CASE("http: keep-alive connections the server dropped are not used for a request") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "oa", R"("max_concurrency": 4)")});
    std::string lines;
    for (int i = 0; i < 12; ++i)
        lines += job_line("s" + std::to_string(i), "stale " + std::to_string(i) + " #fail=stale",
                          "gpt-image-2", 1);
    env.enqueue(lines);
    env.run_until_idle();
    for (int i = 0; i < 12; ++i) {
        const std::string key = "s" + std::to_string(i);
        CHECK(env.job_state(key) == "succeeded");
        // Never an error attempt: a dropped idle connection is not the provider's fault.
        CHECK(env.attempts(key) == std::vector<std::string>{"ok||"});
        check_images_match(env, key, "stale " + std::to_string(i) + " #fail=stale");
    }
    CHECK(sim.stat("requests") == 12);
    CHECK(sim.stat("images") == 12);
    CHECK(outputs_kept(env) == 12);
}

TEST_CASE("http: a POST dropped after it was sent on a reused connection is not sent again") {
    // One connection (max_concurrency 1): job a's answer keeps it alive, job b's request goes
    // out on it, and the sim reads it whole and closes without answering. The provider may have
    // generated and billed it: the client must not resend it quietly; the attempt is a network
    // error that may have been billed (counted like a timeout), and the retry is a new attempt.
    Sim sim;
    DaemonEnv env({openai_provider(sim, "oa", R"("max_concurrency": 1)")});
    env.enqueue(job_line("a", "a calm lake", "gpt-image-2", 1) +
                job_line("b", "a quiet harbour #fail=close*1", "gpt-image-2", 1));
    env.run_until_idle();
    CHECK(env.job_state("a") == "succeeded");
    CHECK(env.job_state("b") == "succeeded");
    CHECK(env.attempts("a") == std::vector<std::string>{"ok||"});
    CHECK(env.attempts("b") == std::vector<std::string>{"error|network|0", "ok||"});
    CHECK(env.value("SELECT error_code FROM attempts WHERE error_class = 'network'") ==
          "after_send");
    CHECK(env.value("SELECT message FROM attempts WHERE error_class = 'network'")
              .find("may have generated and billed") != std::string::npos);
    CHECK(env.value("SELECT timeouts FROM requests WHERE job_id = " + env.job_id("b")) == "1");
    // Spend counts it: billed, at the worst case since no usage came back.
    CHECK(env.value("SELECT billed || '|' || cost_basis FROM attempts WHERE error_class = "
                    "'network'") == "1|worst_case");
    // Every request the sim served is an attempt on record: nothing was sent twice unseen.
    CHECK(sim.stat("requests") == 3);
    CHECK(sim.stat("images") == 2);
    CHECK(outputs_kept(env) == 2);
}

TEST_CASE("http: a connection closed without any answer is a network error, then retried") {
    Sim sim;
    DaemonEnv env({openai_provider(sim)});
    env.enqueue(job_line("c", "a quiet harbour #fail=close*1", "gpt-image-2", 2));
    env.run_until_idle();
    CHECK(env.job_state("c") == "succeeded");
    CHECK(env.attempts("c") == std::vector<std::string>{"error|network|0", "ok||"});
    CHECK(env.value("SELECT message FROM attempts WHERE error_class = 'network'")
              .find("closed the connection without an answer") != std::string::npos);
    env.check_outputs("c", 2);
    CHECK(sim.stat("images") == 2);
}

TEST_CASE("http: a gzip answer is decoded") {
    Sim sim;
    DaemonEnv env({openai_provider(sim), google_provider(sim)});
    env.enqueue(job_line("o", "zipped owl #fail=gzip", "gpt-image-2", 2) +
                job_line("g", "zipped gull #fail=gzip", "imagen-4.0-generate-001", 2));
    env.run_until_idle();
    for (const char* key : {"o", "g"}) {
        CHECK(env.job_state(key) == "succeeded");
        CHECK(env.attempts(key) == std::vector<std::string>{"ok||"});
        env.check_outputs(key, 2);
    }
    check_images_match(env, "o", "zipped owl #fail=gzip");
    check_images_match(env, "g", "zipped gull #fail=gzip");
    CHECK(sim.stat("images") == 4);
}

TEST_CASE("http: an answer over max_response_bytes fails the request at once") {
    Sim sim;
    DaemonEnv env({openai_provider(sim, "oa", R"("max_response_bytes": 2000)")});
    env.enqueue(job_line("big", "a large picture", "gpt-image-2", 1));
    env.run_until_idle();
    CHECK(env.job_state("big") == "failed");
    CHECK(env.attempts("big") == std::vector<std::string>{"error|invalid_request|0"});
    CHECK(env.value("SELECT error_code FROM attempts") == "response_too_large");
    CHECK(sim.stat("requests") == 1);  // not asked again: it would not shrink
}

TEST_CASE("http: a Latin-1 error page is stored and exported as valid UTF-8") {
    Sim sim;
    DaemonEnv env({openai_provider(sim)}, fast_retry(2));
    env.enqueue(job_line("l", "a latin page #fail=latin1", "gpt-image-2", 1));
    env.run_until_idle();
    CHECK(env.job_state("l") == "failed");
    CHECK(env.attempts("l") == std::vector<std::string>{"error|server|502", "error|server|502"});
    auto messages = env.rows("SELECT message FROM attempts");
    for (const auto& m : env.rows("SELECT last_error_message FROM requests")) messages.push_back(m);
    REQUIRE(messages.size() == 3);
    for (const auto& message : messages) {
        INFO(message);
        CHECK(imgbatch::jobs::is_clean_utf8(message));
        CHECK(message.find("Passerelle erron\xef\xbf\xbd"
                           "e") != std::string::npos);
    }
    auto exported = env.cli({"export"});
    REQUIRE(exported.code == 0);
    CHECK(imgbatch::jobs::is_clean_utf8(exported.out));
    auto record = boost::json::parse(exported.out).as_object();  // one job: one line
    CHECK(record.at("state") == "failed");
    auto shown = env.cli({"show", env.job_id("l"), "--json"});
    REQUIRE(shown.code == 0);
    CHECK(imgbatch::jobs::is_clean_utf8(shown.out));
    CHECK_NOTHROW(boost::json::parse(shown.out));
}

TEST_CASE("http: one bad base64 image does not throw away the good ones") {
    Sim sim;
    DaemonEnv env({openai_provider(sim), google_provider(sim)});
    env.enqueue(job_line("o", "three owls #fail=badb64one*1", "gpt-image-2", 3) +
                job_line("g", "three gulls #fail=badb64one*1", "imagen-4.0-generate-001", 3));
    env.run_until_idle();
    for (const char* key : {"o", "g"}) {
        INFO(key);
        CHECK(env.job_state(key) == "succeeded");
        // The first answer's two good images are kept; only the missing one is asked again.
        CHECK(env.attempts(key) == std::vector<std::string>{"error|bad_response|200", "ok||"});
        CHECK(env.requests(key) == std::vector<std::string>{"succeeded|3|3"});
        env.check_outputs(key, 3);
    }
    CHECK(env.value("SELECT group_concat(DISTINCT error_code) FROM attempts WHERE error_code "
                    "IS NOT NULL") == "invalid_base64");
    // 2 + 1 images per job were served and all of them kept.
    CHECK(sim.stat("images") == 6);
    CHECK(outputs_kept(env) == 6);
}

TEST_CASE("http: a TLS certificate failure pauses the provider and says what was wrong") {
    // A certificate for another name, made at test time; trusted only when SSL_CERT_FILE
    // points at it (OpenSSL's default verify paths read that variable).
    TestCert cert("other.example", "DNS:other.example");
    TlsServer server(cert, TlsServer::Mode::respond);
    for (bool trusted : {false, true}) {
        INFO("trusted " << trusted);
        DaemonEnv env({provider_json("tls", "openai",
                                     "https://localhost:" + std::to_string(server.port()) + "/v1",
                                     {"gpt-image-2"})});
        env.enqueue(job_line("t", "a fox behind glass", "gpt-image-2", 1));
        std::vector<std::string> vars;
        if (trusted) vars.push_back("SSL_CERT_FILE=" + cert.cert_file());
        RunResult r =
            run({"--config", env.config, "run", "--until-idle"}, "", vars, env.dir.path(), 60);
        INFO("run stderr: " << DaemonEnv::tail(r.err));
        REQUIRE(r.code == 0);
        // It will not fix itself: the provider is paused, the job waits, no attempt is used.
        CHECK(env.job_state("t") == "queued");
        CHECK(env.attempts("t") == std::vector<std::string>{"error|auth|0"});
        CHECK(DaemonEnv::split(env.counters("t"))[0] == "0");
        CHECK(env.value("SELECT error_code FROM attempts") == "tls_certificate");
        const std::string message = env.value("SELECT message FROM attempts");
        CHECK(message.find(trusted ? "does not match the host name localhost"
                                   : "its issuer is not trusted") != std::string::npos);
        auto state = env.rows("SELECT paused, reason FROM provider_state WHERE name = 'tls'");
        REQUIRE(state.size() == 1);
        CHECK(state[0].rfind("1|auth: TLS certificate of localhost:", 0) == 0);
    }
    CHECK(server.handshakes() == 0);
}
