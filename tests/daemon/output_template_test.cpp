// The output_name template (parse, render, uniqueness) and sidecars (staged, placed and
// unplaced with their images, removed with orphans).
#include "daemon/output_template.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/json/parse.hpp>

#include "daemon/config.hpp"
#include "daemon/engine/output_writer.hpp"
#include "daemon/image.hpp"
#include "tests/jobs/store_fixture.hpp"

using namespace imgbatch::daemon;
namespace fs = std::filesystem;
namespace jobs = imgbatch::jobs;

namespace {

struct Dir {
    Dir() {
        char tmpl[] = "/tmp/imgbatch-template-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~Dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string path;
};

std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

OutputWriter writer(const std::string& dir, const std::string& tmpl, bool sidecar = false) {
    return OutputWriter(dir, "abcd1234", OutputOptions{NameTemplate::parse(tmpl), sidecar});
}

constexpr double kDay = 1795219200;  // 2026-11-21T00:00:00Z

}  // namespace

TEST_CASE("output_name: parse accepts tokens and directories, refuses what could escape") {
    auto t = NameTemplate::parse("{batch}/{date}/{prompt_slug}_{key}");
    CHECK(t.components.size() == 3);
    CHECK_FALSE(t.ends_with_job_index);
    CHECK(NameTemplate::parse("{model}/x-{job}-{index}").ends_with_job_index);
    CHECK(NameTemplate::parse("{job}-{index}").ends_with_job_index);
    CHECK_FALSE(NameTemplate::parse("{key}{job}-{index}").ends_with_job_index);
    CHECK(NameTemplate::parse("").empty());
    for (const char* bad : {"/abs/{key}", "../{key}", "a/../{key}", "a//{key}", "{key}/",
                            ".hidden/{key}", "{nope}", "{key", "key}", "a~b", "a\\b", "a\tb"}) {
        INFO(bad);
        CHECK_THROWS_AS(NameTemplate::parse(bad), std::invalid_argument);
    }
}

TEST_CASE("config: output_name and sidecar are read and checked") {
    auto c = parse_config(R"({"output_name": "{batch}/{prompt_slug}", "sidecar": true})", "c.json");
    CHECK(c.sidecar);
    CHECK(c.output_name.source == "{batch}/{prompt_slug}");
    CHECK_FALSE(parse_config("{}", "c.json").sidecar);
    CHECK_THROWS_WITH_AS(parse_config(R"({"output_name": "{x}"})", "c.json"),
                         doctest::Contains("'output_name'"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_config(R"({"sidecar": "yes"})", "c.json"),
                         doctest::Contains("'sidecar' must be true or false"), ConfigError);
}

TEST_CASE("output_name: tokens render readable names that end in -{job}-{index}") {
    auto w = writer("/o", "{batch}/{date}/{model}/{prompt_slug}_{key}");
    NameFields f{"night run", "fox", "gpt-image-2", "A red Fox, at dawn!", 12, 3, kDay + 3600};
    CHECK(w.final_path(f, "png") ==
          "/o/night run/2026-11-21/gpt-image-2/a-red-fox-at-dawn_fox-12-3.png");
    // The job and index the template writes itself are not repeated.
    auto w2 = writer("/o", "{batch}/{prompt_slug}-{job}-{index}");
    CHECK(w2.final_path(f, "webp") == "/o/night run/a-red-fox-at-dawn-12-3.webp");
    CHECK(writer("/o", "{job}-{index}").final_path(f, "png") == "/o/12-3.png");
    // A key-less job's {key} is job-<id>; names that are not plain get their hash.
    NameFields g{"../x", "", "m", "", 5, 0, kDay};
    CHECK(writer("/o", "{batch}/{key}").final_path(g, "png").starts_with("/o/___x~"));
    CHECK(writer("/o", "{batch}/{key}").final_path(g, "png").ends_with("/job-5-5-0.png"));
    CHECK(writer("/o", "{prompt_slug}").final_path(g, "png") == "/o/prompt-5-0.png");
    CHECK(OutputWriter::prompt_slug(std::string(300, 'a')).size() == 60);
}

TEST_CASE("output_name: distinct (job, index) never share a path, however tokens collide") {
    // Prompts, keys and batches chosen so that the free parts of the names run into each
    // other ("a1" + "2" vs "a" + "12", dashes and digits at the joins).
    std::vector<std::string> texts{"", "a", "a1", "a-1", "1", "a-", "-", "12", "a 1", "A1"};
    for (const char* tmpl : {"{prompt_slug}{key}", "{prompt_slug}-{job}-{index}",
                             "{key}{job}-{index}", "{batch}/{key}", "{model}{prompt_slug}", "x"}) {
        auto w = writer("/o", tmpl);
        std::set<std::string> paths;
        std::size_t made = 0;
        for (std::int64_t job = 1; job <= 30; ++job)
            for (int idx : {0, 1, 2, 12, 21}) {
                const std::string& s = texts[static_cast<std::size_t>(job) % texts.size()];
                NameFields f{s, s, s, s, job, idx, kDay};
                paths.insert(w.final_path(f, "png"));
                ++made;
            }
        INFO(tmpl);
        CHECK(paths.size() == made);
    }
}

TEST_CASE("sidecars: staged, placed and unplaced with their images; removed with orphans") {
    Dir dir;
    auto w = writer(dir.path, "{batch}/{prompt_slug}", true);
    REQUIRE_FALSE(w.start());
    w.share();
    jobs::ClaimedRequest req;
    req.request_id = 7;
    req.job_id = 42;
    req.n = 2;
    req.attempt_no = 1;
    req.batch = "b";
    req.key = "k";
    req.model = "gpt-image-2";
    req.provider = "oa";
    req.prompt = "a red fox";
    req.params_json = R"({"size":"1024x1024"})";
    req.created_at = kDay;
    std::vector<StagedImage> images;
    for (unsigned seed : {1u, 2u}) {
        StagedImage img;
        img.bytes = make_png(8, 6, seed);
        img.info = *sniff_image(img.bytes);
        images.push_back(std::move(img));
    }
    auto staged = w.stage(req, images);
    REQUIRE_FALSE(staged.error);
    std::string tmp = w.temp_path(7, 1, 0);
    CHECK(fs::exists(OutputWriter::sidecar_path(tmp)));

    jobs::Completion c;
    c.request_id = 7;
    c.attempt_no = 1;
    c.outputs = staged.outputs;
    w.place(c);
    w.sync_dirs();
    const std::string image = dir.path + "/b/a-red-fox-42-0.png";
    REQUIRE(c.outputs[0].path == image);
    auto side = boost::json::parse(slurp(image + ".json")).as_object();
    CHECK(side.at("prompt") == "a red fox");
    CHECK(side.at("model") == "gpt-image-2");
    CHECK(side.at("provider") == "oa");
    CHECK(side.at("job") == 42);
    CHECK(side.at("key") == "k");
    CHECK(side.at("batch") == "b");
    CHECK(side.at("index") == 0);
    CHECK(side.at("params").at("size") == "1024x1024");
    CHECK(side.at("sha256").as_string() == sha256_hex(slurp(image)).c_str());
    CHECK(side.at("width") == 8);
    CHECK_FALSE(fs::exists(OutputWriter::sidecar_path(tmp)));

    // The commit failed: both go back, and come again with the next place().
    w.unplace(c);
    CHECK_FALSE(fs::exists(image));
    CHECK_FALSE(fs::exists(image + ".json"));
    CHECK(fs::exists(OutputWriter::sidecar_path(tmp)));
    w.place(c);
    CHECK(fs::exists(image + ".json"));

    // A taken name: the image gets ~2, and its sidecar follows it.
    Dir dir2;
    auto w2 = writer(dir2.path, "{batch}/{prompt_slug}", true);
    REQUIRE_FALSE(w2.start());
    w2.share();
    fs::create_directories(dir2.path + "/b");
    std::ofstream(dir2.path + "/b/a-red-fox-42-0.png") << "mine";
    auto staged2 = w2.stage(req, images);
    jobs::Completion c2;
    c2.request_id = 7;
    c2.attempt_no = 1;
    c2.outputs = staged2.outputs;
    w2.place(c2);
    CHECK(c2.outputs[0].path == dir2.path + "/b/a-red-fox-42-0~2.png");
    CHECK(fs::exists(dir2.path + "/b/a-red-fox-42-0~2.png.json"));
    CHECK(slurp(dir2.path + "/b/a-red-fox-42-0.png") == "mine");
    CHECK_FALSE(fs::exists(dir2.path + "/b/a-red-fox-42-0.png.json"));
}

TEST_CASE("remove_orphans finds templated names (the same for every attempt) and sidecars") {
    Dir dir;
    jobs::Store store(dir.path + "/t.db");
    using jobs::testing::item;
    auto enq = store.enqueue("b", {item("a red fox", 1, 1, "k")});
    auto claimed = store.claim("p1", "old", 1, jobs::unix_now(), 60);
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].created_at > 0);
    store.requeue_expired(jobs::unix_now() + 120);  // the attempt was lost

    auto names = writer(dir.path + "/out", "{batch}/{date}/{prompt_slug}", true);
    std::string orphan = names.final_path(claimed[0], 0, "png");
    fs::create_directories(fs::path(orphan).parent_path());
    std::ofstream(orphan) << "x";
    std::ofstream(orphan + ".json") << "{}";
    auto alone = writer(dir.path + "/out", "{batch}/{date}/{prompt_slug}", true);
    REQUIRE_FALSE(alone.start());
    CHECK(alone.remove_orphans(store) == 1);
    CHECK_FALSE(fs::exists(orphan));
    CHECK_FALSE(fs::exists(orphan + ".json"));
}
