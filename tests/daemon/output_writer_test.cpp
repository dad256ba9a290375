#include "daemon/output_writer.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/image.hpp"

using namespace imgbatch::daemon;
namespace fs = std::filesystem;
namespace jobs = imgbatch::jobs;

namespace {

struct TempDir {
    TempDir() {
        char tmpl[] = "/tmp/imgbatch-writer-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        for (auto& e : fs::recursive_directory_iterator(path, ec))
            fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
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

jobs::ClaimedRequest request(std::string batch, std::string key) {
    jobs::ClaimedRequest r;
    r.request_id = 7;
    r.job_id = 42;
    r.first_index = 4;
    r.n = 4;
    r.images_done = 1;
    r.attempt_no = 3;
    r.batch = std::move(batch);
    r.key = std::move(key);
    return r;
}

StagedImage png(int w, int h, unsigned seed) {
    StagedImage img;
    img.bytes = make_png(w, h, seed);
    img.info = *sniff_image(img.bytes);
    img.revised_prompt = "revised";
    return img;
}

jobs::Completion completion_for(const jobs::ClaimedRequest& req, StageResult staged) {
    jobs::Completion c;
    c.request_id = req.request_id;
    c.attempt_no = req.attempt_no;
    c.finished_at = 100;
    c.outputs = std::move(staged.outputs);
    return c;
}

}  // namespace

TEST_CASE("sanitize keeps [A-Za-z0-9._-] and never starts with a dot") {
    CHECK(OutputWriter::sanitize("night-run_2.v1") == "night-run_2.v1");
    CHECK(OutputWriter::sanitize("a b/c\\d:é") == "a_b_c_d___");
    CHECK(OutputWriter::sanitize("..") == "_.");
    CHECK(OutputWriter::sanitize(".hidden") == "_hidden");
    CHECK(OutputWriter::sanitize("") == "_");
}

TEST_CASE("final names: {output_dir}/{batch}/{key or job id}-{idx}.{ext}") {
    OutputWriter w("/out", "abcd1234");
    CHECK(w.final_path(request("b 1", "cat/1"), 5, "png") == "/out/b_1/cat_1-5.png");
    CHECK(w.final_path(request("b", ""), 0, "jpg") == "/out/b/42-0.jpg");
    CHECK(w.temp_path("/out/b/42-0.jpg", 3) == "/out/b/.42-0.jpg.abcd1234.3.tmp");
}

TEST_CASE("stage writes temporary files; place renames them to the final names") {
    TempDir dir;
    OutputWriter w(dir.path, "abcd1234");
    auto req = request("night", "k");
    std::vector<StagedImage> images{png(8, 6, 1), png(8, 6, 2)};
    StageResult staged = w.stage(req, images);
    REQUIRE_FALSE(staged.error);
    REQUIRE(staged.outputs.size() == 2);
    // idx = first_index + images_done + i
    CHECK(staged.outputs[0].idx == 5);
    CHECK(staged.outputs[1].idx == 6);
    CHECK(staged.outputs[0].path == dir.path + "/night/k-5.png");
    CHECK(staged.outputs[0].mime == "image/png");
    CHECK(staged.outputs[0].width == 8);
    CHECK(staged.outputs[0].height == 6);
    CHECK(staged.outputs[0].bytes == static_cast<std::int64_t>(images[0].bytes.size()));
    CHECK(staged.outputs[0].sha256 == sha256_hex(images[0].bytes));
    CHECK(staged.outputs[0].revised_prompt == "revised");
    CHECK_FALSE(fs::exists(staged.outputs[0].path));
    CHECK(fs::exists(w.temp_path(staged.outputs[0].path, 3)));

    auto c = completion_for(req, staged);
    w.place(c);
    w.sync_dirs();
    CHECK(slurp(dir.path + "/night/k-5.png") == images[0].bytes);
    CHECK(slurp(dir.path + "/night/k-6.png") == images[1].bytes);
    CHECK_FALSE(fs::exists(w.temp_path(c.outputs[0].path, 3)));
}

TEST_CASE("discard removes the temporary files of a stale completion") {
    TempDir dir;
    OutputWriter w(dir.path, "abcd1234");
    auto req = request("b", "");
    auto staged = w.stage(req, {png(4, 4, 3)});
    REQUIRE_FALSE(staged.error);
    auto c = completion_for(req, staged);
    std::string tmp = w.temp_path(c.outputs[0].path, c.attempt_no);
    CHECK(fs::exists(tmp));
    w.discard(c);
    CHECK_FALSE(fs::exists(tmp));
    CHECK_FALSE(fs::exists(c.outputs[0].path));
}

TEST_CASE("an unwritable output directory is a local error and leaves nothing staged") {
    if (::geteuid() == 0) {
        // root ignores permissions: use a path below a regular file instead.
        TempDir dir;
        std::ofstream(dir.path + "/file") << "x";
        OutputWriter w(dir.path + "/file", "abcd1234");
        auto staged = w.stage(request("b", ""), {png(4, 4, 1)});
        REQUIRE(staged.error);
        CHECK(staged.error->cls == jobs::ErrorClass::local);
        CHECK(staged.outputs.empty());
        return;
    }
    TempDir dir;
    fs::create_directories(dir.path + "/b");
    fs::permissions(dir.path + "/b", fs::perms::owner_read | fs::perms::owner_exec);
    OutputWriter w(dir.path, "abcd1234");
    auto staged = w.stage(request("b", ""), {png(4, 4, 1), png(4, 4, 2)});
    REQUIRE(staged.error);
    CHECK(staged.error->cls == jobs::ErrorClass::local);
    CHECK(staged.error->message.find("Permission denied") != std::string::npos);
    CHECK(staged.outputs.empty());
}

TEST_CASE("a failed rename keeps every image of the completion staged") {
    TempDir dir;
    OutputWriter w(dir.path, "abcd1234");
    auto req = request("b", "");
    auto staged = w.stage(req, {png(4, 4, 1), png(4, 4, 2)});
    REQUIRE_FALSE(staged.error);
    auto c = completion_for(req, staged);
    c.next = jobs::Next::done;
    c.count_attempt = true;
    // The final name of the second image is a directory: its rename fails.
    fs::create_directories(c.outputs[1].path + "/x");
    auto first_final = c.outputs[0].path;
    CHECK_THROWS_WITH_AS(w.place(c), doctest::Contains("rename"), std::runtime_error);
    CHECK(c.next == jobs::Next::done);
    CHECK(c.outputs.size() == 2);
    CHECK_FALSE(fs::exists(first_final));  // nothing unrecorded is left in place
    CHECK(fs::exists(w.temp_path(c.outputs[0].path, c.attempt_no)));
    CHECK(fs::exists(w.temp_path(c.outputs[1].path, c.attempt_no)));
    // Once the obstacle is gone the same completion places; unplace undoes it.
    fs::remove_all(c.outputs[1].path);
    w.place(c);
    CHECK(fs::exists(c.outputs[1].path));
    w.unplace(c);
    CHECK_FALSE(fs::exists(c.outputs[0].path));
    CHECK(fs::exists(w.temp_path(c.outputs[1].path, c.attempt_no)));
}

TEST_CASE("cleanup_stale removes other instances' temp files only") {
    TempDir dir;
    fs::create_directories(dir.path + "/b");
    std::ofstream(dir.path + "/b/.1-0.png.deadbeef.1.tmp") << "x";
    std::ofstream(dir.path + "/b/.1-1.png.abcd1234.1.tmp") << "x";
    std::ofstream(dir.path + "/b/1-2.png") << "x";
    OutputWriter w(dir.path, "abcd1234");
    CHECK(w.cleanup_stale() == 1);
    CHECK_FALSE(fs::exists(dir.path + "/b/.1-0.png.deadbeef.1.tmp"));
    CHECK(fs::exists(dir.path + "/b/.1-1.png.abcd1234.1.tmp"));
    CHECK(fs::exists(dir.path + "/b/1-2.png"));
}

TEST_CASE("owner tags are 8 hex digits and differ between owners") {
    auto a = OutputWriter::tag_for("host:1:aaaa0000");
    auto b = OutputWriter::tag_for("host:2:bbbb1111");
    CHECK(a.size() == 8);
    CHECK(a != b);
}
