// `imgbatch report` through the real binary, then opened in headless Chromium (Debian's
// chromium) to check what a person sees: the counts, the thumbnails loaded, a failure's
// reason, the filters.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/integration/daemon_fixture.hpp"

using namespace imgbatch::test;
namespace fs = std::filesystem;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

std::string chromium() {
    for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
        if (fs::exists(p)) return p;
    return {};
}

// The DOM after the page's scripts ran, for url (file://...#filters). The window is tall
// enough for every tile to be in view, so lazy images load.
std::string dump_dom(const TempDir& dir, const std::string& url) {
    std::string out = dir.file("dom.html");
    // In a subshell: run_shell sends the command's own output to /dev/null.
    std::string cmd = "(" + chromium() +
                      " --headless --disable-gpu --no-sandbox --no-first-run "
                      "--disable-dev-shm-usage --user-data-dir=" +
                      dir.file("chrome") +
                      " --window-size=1280,4000 --virtual-time-budget=5000 --dump-dom '" + url +
                      "' > " + out + " 2>/dev/null)";
    REQUIRE(run_shell(cmd) == 0);
    return read_file(out);
}

}  // namespace

TEST_CASE(
    "report: summary, failures and thumbnails, as Chromium shows them; rebuilt incrementally") {
    REQUIRE_MESSAGE(!chromium().empty(), "chromium is not installed (scripts/install-deps.sh)");
    Sim sim;
    DaemonEnv env({openai_provider(sim), google_provider(sim)});
    env.enqueue(job_line("fox", "a red fox", "gpt-image-2", 2) +
                    job_line("owl", "a snowy owl", "imagen-4.0-generate-001", 2) +
                    job_line("cat", "a <b>bold</b> cat", "gpt-image-2", 1) +
                    job_line("bad", "a broken fox #fail=invalid", "gpt-image-2", 1),
                "night");
    env.run_until_idle();
    REQUIRE(env.job_state("bad") == "failed");

    const std::string report = env.dir.file("report");
    auto r = env.cli({"report", "-o", report, "--thumb-size", "32"});
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(r.err.find("5 thumbnails made, 0 reused") != std::string::npos);
    REQUIRE(fs::exists(report + "/index.html"));
    std::size_t thumbs = 0;
    for (const auto& e : fs::directory_iterator(report + "/thumbs")) {
        ++thumbs;
        std::string jpeg = read_file(e.path().string());
        CHECK(jpeg.substr(0, 3) == "\xFF\xD8\xFF");  // JPEG
    }
    CHECK(thumbs == 5);
    auto mtime = fs::last_write_time(fs::directory_iterator(report + "/thumbs")->path());

    // Again: every thumbnail is reused.
    r = env.cli({"report", "-o", report, "--thumb-size", "32"});
    REQUIRE(r.code == 0);
    CHECK(r.err.find("0 thumbnails made, 5 reused") != std::string::npos);
    CHECK(fs::last_write_time(fs::directory_iterator(report + "/thumbs")->path()) == mtime);

    const std::string url = "file://" + report + "/index.html";
    std::string dom = dump_dom(env.dir, url);
    INFO(dom.substr(0, 2000));
    // The summary: 4 jobs, 5 of 6 images (the failed job's image is missing).
    CHECK(dom.find(R"(<td class="num jobs">4</td>)") != std::string::npos);
    CHECK(dom.find(R"(<td class="num images">5 / 6</td>)") != std::string::npos);
    CHECK(dom.find("succeeded 3") != std::string::npos);
    CHECK(dom.find("failed 1") != std::string::npos);
    // Five tiles, each thumbnail loaded from thumbs/, each linking to its image.
    CHECK(count(dom, R"(class="tile")") == 5);
    CHECK(count(dom, R"(data-loaded="1")") == 5);
    CHECK(count(dom, R"(src="thumbs/)") == 5);
    CHECK(dom.find(R"(href="../out/night/fox-0.png")") != std::string::npos);
    // The prompt is text, not markup.
    CHECK(dom.find("a &lt;b&gt;bold&lt;/b&gt; cat") != std::string::npos);
    // The failure and its reason.
    CHECK(count(dom, R"(class="failure")") == 1);
    CHECK(dom.find("invalid_request") != std::string::npos);
    CHECK(dom.find("Invalid value for 'size'") != std::string::npos);
    CHECK(dom.find(R"(<td class="num http">400</td>)") != std::string::npos);
    CHECK(dom.find("5 images, 1 failures shown") != std::string::npos);

    // Filters (set from the URL as a person's choice in the selects would): the google
    // provider's two images and no failure; the failed state: no image, the one failure.
    dom = dump_dom(env.dir, url + "#provider=gg");
    CHECK(count(dom, R"(class="tile")") == 2);
    CHECK(count(dom, R"(class="failure")") == 0);
    CHECK(dom.find("2 images, 0 failures shown") != std::string::npos);
    dom = dump_dom(env.dir, url + "#state=failed&model=gpt-image-2");
    CHECK(count(dom, R"(class="tile")") == 0);
    CHECK(count(dom, R"(class="failure")") == 1);

    // An image whose file is gone has no thumbnail; one libvips cannot read is named.
    fs::remove(
        env.value("SELECT path FROM outputs o JOIN jobs j ON j.id = o.job_id "
                  "WHERE j.key = 'cat'"));
    const std::string owl = env.value(
        "SELECT path FROM outputs o JOIN jobs j ON j.id = o.job_id WHERE j.key = 'owl' AND idx = "
        "1");
    write_file(owl, "not an image");
    fs::remove_all(report + "/thumbs");
    r = env.cli({"report", "-o", report, "--thumb-size", "32"});
    CHECK(r.code == 0);
    CHECK(r.err.find("thumbnail: " + owl) != std::string::npos);
    CHECK(r.err.find("3 thumbnails made, 0 reused, 1 failed") != std::string::npos);
    std::string page = read_file(report + "/index.html");
    CHECK(count(page, R"("thumb":"")") == 2);  // the missing file, the unreadable one
    CHECK(count(page, R"("thumb":"thumbs/)") == 3);

    // One batch only; an unknown batch is an error.
    CHECK(env.cli({"report", "--batch", "nope", "-o", report}).code == 1);
}
