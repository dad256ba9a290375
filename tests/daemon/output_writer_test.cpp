#include "daemon/engine/output_writer.hpp"

#include <doctest/doctest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/image.hpp"
#include "tests/jobs/store_fixture.hpp"

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

// Files (not directories) anywhere below dir.
int files_below(const std::string& dir) {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_directory() ? 0 : 1;
    return n;
}

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

// A started writer (its temporary directory taken), that lets others start.
struct Started {
    explicit Started(const std::string& dir, const std::string& tag = "abcd1234") : w(dir, tag) {
        auto err = w.start();
        REQUIRE_MESSAGE(!err, *err);
        w.share();
    }
    OutputWriter w;
};

bool valid_utf8(const std::string& s) {
    return OutputWriter::escape(s).size() == s.size() &&
           OutputWriter::escape(s).find('_') == s.find('_');
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

TEST_CASE("escape keeps UTF-8 letters and replaces '/', controls, invalid bytes, leading dots") {
    CHECK(OutputWriter::escape("night run 2.v1") == "night run 2.v1");
    CHECK(OutputWriter::escape("\xe7\x8c\xab & \xc3\xa9t\xc3\xa9") ==
          "\xe7\x8c\xab & \xc3\xa9t\xc3\xa9");
    CHECK(OutputWriter::escape("a/b\\c") == "a_b\\c");
    CHECK(OutputWriter::escape(std::string("a\0b", 3)) == "a_b");
    CHECK(OutputWriter::escape("a\tb\nc\x7f") == "a_b_c_");
    CHECK(OutputWriter::escape("a\xc2\x85z") == "a_z");    // C1 control NEL
    CHECK(OutputWriter::escape("\xff\xfe") == "__");       // invalid bytes
    CHECK(OutputWriter::escape("\xe7\x8c") == "__");       // truncated sequence
    CHECK(OutputWriter::escape("\xc0\xaf") == "__");       // overlong '/'
    CHECK(OutputWriter::escape("\xed\xa0\x80") == "___");  // surrogate
    CHECK(OutputWriter::escape("..") == "__");
    CHECK(OutputWriter::escape("..a.b.") == "__a.b.");
}

TEST_CASE("name_component: plain names stay as they are, others get a hash suffix") {
    for (const char* plain : {"\xe7\x8c\xab", "a b", "a_b", "1", "night run", "job-", "job-1a"})
        CHECK(OutputWriter::name_component(plain, true) == plain);
    auto hashed = [](std::string_view name, bool reserve = true) {
        std::string c = OutputWriter::name_component(name, reserve);
        auto tilde = c.rfind('~');
        REQUIRE(tilde != std::string::npos);
        CHECK(c.size() - tilde == 17);
        CHECK(c.substr(tilde + 1) == sha256_hex(name).substr(0, 16));
        return c.substr(0, tilde);
    };
    CHECK(hashed("a/b") == "a_b");
    CHECK(hashed(".hidden") == "_hidden");
    CHECK(hashed("..") == "__");
    CHECK(hashed("../x", false) == "___x");
    CHECK(hashed("") == "");
    CHECK(hashed("a~b") == "a~b");
    CHECK(hashed("job-17") == "job-17");  // reserved for jobs without a key
    CHECK(OutputWriter::name_component("job-17", false) == "job-17");  // batch names: plain
    // Long names are cut at a character boundary.
    std::string cats;
    for (int i = 0; i < 100; ++i) cats += "\xe7\x8c\xab";
    std::string cut = hashed(cats);
    CHECK(cut.size() <= OutputWriter::kMaxStem - 17);
    CHECK(cut.size() % 3 == 0);
    CHECK(cats.starts_with(cut));
}

TEST_CASE("distinct jobs never share a final path; every component is safe") {
    OutputWriter w("/out", "abcd1234");
    std::vector<std::string> names{"\xe7\x8c\xab",
                                   "\xe7\x8b\x97",
                                   "a b",
                                   "a_b",
                                   "a/b",
                                   "a\\b",
                                   "1",
                                   "job-1",
                                   "job-1~",
                                   ".",
                                   "..",
                                   "_",
                                   "__",
                                   "",
                                   ".a",
                                   "_a",
                                   "a\xff",
                                   "a\xfe",
                                   "a\x01",
                                   "a\x02",
                                   "a~b",
                                   "a-0",
                                   std::string(300, 'x'),
                                   std::string(299, 'x') + "y",
                                   std::string(300, 'x') + "/"};
    for (int i = 0; i < 50; ++i) names.push_back("k" + std::to_string(i) + "\xe7\x8c\xab/");
    std::set<std::string> paths;
    std::size_t expected = 0;
    for (const auto& batch : {std::string("b"), std::string("b/"), std::string(".b"),
                              std::string("_b"), std::string(400, 'b')}) {
        std::int64_t id = 0;
        for (const auto& key : names) {
            ++id;
            for (int idx : {0, 1, 10}) {
                std::string keyed = w.final_path(batch, key, id, idx, "png");
                std::string keyless = w.final_path(batch, "", id, idx, "png");
                for (const auto& p : {keyed, keyless}) {
                    REQUIRE(p.starts_with("/out/"));
                    std::string rest = p.substr(5);
                    auto slash = rest.find('/');
                    REQUIRE(slash != std::string::npos);
                    std::string dir = rest.substr(0, slash), file = rest.substr(slash + 1);
                    CHECK(file.find('/') == std::string::npos);
                    for (const auto& comp : {dir, file}) {
                        CHECK(!comp.empty());
                        CHECK(comp[0] != '.');
                        CHECK(comp.size() <= 255);
                        CHECK(valid_utf8(comp));
                    }
                }
                if (!key.empty()) {  // an empty key means no key
                    paths.insert(keyed);
                    ++expected;
                }
                paths.insert(keyless);
                ++expected;
            }
        }
    }
    // A key-less job and a keyed job never share an id here, so every path must be distinct.
    CHECK(paths.size() == expected);
}

TEST_CASE("stage writes temporary files; place renames them to the final names") {
    TempDir dir;
    Started s(dir.path);
    auto& w = s.w;
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
    std::string tmp = w.temp_path(req.request_id, 3, 5);
    CHECK(tmp == dir.path + "/.imgbatch-tmp/abcd1234/7/7-3-5.tmp");
    CHECK(fs::exists(tmp));

    auto c = completion_for(req, staged);
    w.place(c);
    w.sync_dirs();
    CHECK(slurp(dir.path + "/night/k-5.png") == images[0].bytes);
    CHECK(slurp(dir.path + "/night/k-6.png") == images[1].bytes);
    CHECK_FALSE(fs::exists(tmp));
    // The commit failed: unplace stages them again, and they can be placed again.
    w.unplace(c);
    CHECK(fs::exists(tmp));
    CHECK_FALSE(fs::exists(dir.path + "/night/k-5.png"));
    w.place(c);
    CHECK(slurp(c.outputs[1].path) == images[1].bytes);
}

TEST_CASE("place never replaces an existing file: the image takes the name ~2") {
    TempDir dir;
    Started s(dir.path);
    auto req = request("b", "k");
    fs::create_directories(dir.path + "/b");
    std::ofstream(dir.path + "/b/k-5.png") << "recorded for another output";
    auto staged = s.w.stage(req, {png(4, 4, 1)});
    REQUIRE_FALSE(staged.error);
    auto c = completion_for(req, staged);
    s.w.place(c);
    CHECK(slurp(dir.path + "/b/k-5.png") == "recorded for another output");
    REQUIRE(c.outputs.size() == 1);
    CHECK(c.outputs[0].path == dir.path + "/b/k-5~2.png");
    CHECK(sha256_hex(slurp(c.outputs[0].path)) == c.outputs[0].sha256);
    // unplace takes back only what place renamed.
    s.w.unplace(c);
    CHECK(slurp(dir.path + "/b/k-5.png") == "recorded for another output");
    CHECK_FALSE(fs::exists(dir.path + "/b/k-5~2.png"));
}

TEST_CASE("discard removes the temporary files of a stale completion") {
    TempDir dir;
    Started s(dir.path);
    auto req = request("b", "");
    auto staged = s.w.stage(req, {png(4, 4, 3)});
    REQUIRE_FALSE(staged.error);
    auto c = completion_for(req, staged);
    std::string tmp = s.w.temp_path(c.request_id, c.attempt_no, c.outputs[0].idx);
    CHECK(fs::exists(tmp));
    CHECK(c.outputs[0].path == dir.path + "/b/job-42-5.png");
    s.w.discard(c);
    CHECK_FALSE(fs::exists(tmp));
    CHECK_FALSE(fs::exists(c.outputs[0].path));
}

TEST_CASE("an unwritable batch directory is a local error and leaves nothing staged") {
    TempDir dir;
    Started s(dir.path);
    // A regular file where the batch directory must go (stops root too).
    std::ofstream(dir.path + "/b") << "x";
    auto staged = s.w.stage(request("b", ""), {png(4, 4, 1), png(4, 4, 2)});
    REQUIRE(staged.error);
    CHECK(staged.error->cls == jobs::ErrorClass::local);
    CHECK(staged.error->message.find(dir.path + "/b") != std::string::npos);
    CHECK(staged.outputs.empty());
    CHECK(files_below(dir.path + "/.imgbatch-tmp/abcd1234") == 0);
}

TEST_CASE("start fails with the path and the errno text when output_dir cannot be made") {
    TempDir dir;
    std::ofstream(dir.path + "/file") << "x";
    OutputWriter w(dir.path + "/file/out", "abcd1234");
    auto err = w.start();
    REQUIRE(err);
    CHECK(err->find(dir.path + "/file/out") != std::string::npos);
    CHECK(err->find("Not a directory") != std::string::npos);
}

TEST_CASE("a failed rename keeps every image of the completion staged") {
    TempDir dir;
    Started s(dir.path);
    auto& w = s.w;
    auto req = request("b", "");
    auto staged = w.stage(req, {png(4, 4, 1), png(4, 4, 2)});
    REQUIRE_FALSE(staged.error);
    auto c = completion_for(req, staged);
    c.next = jobs::Next::done;
    // The second temp file vanished (e.g. removed by hand): its rename fails.
    std::string second_tmp = w.temp_path(c.request_id, c.attempt_no, c.outputs[1].idx);
    fs::rename(second_tmp, dir.path + "/aside");
    auto first_final = c.outputs[0].path;
    CHECK_THROWS_WITH_AS(w.place(c), doctest::Contains("rename"), std::runtime_error);
    CHECK(c.next == jobs::Next::done);
    CHECK(c.outputs.size() == 2);
    CHECK_FALSE(fs::exists(first_final));  // nothing unrecorded is left in place
    CHECK(fs::exists(w.temp_path(c.request_id, c.attempt_no, c.outputs[0].idx)));
    fs::rename(dir.path + "/aside", second_tmp);
    w.place(c);
    CHECK(fs::exists(c.outputs[1].path));
}

TEST_CASE("sync_dirs throws for a directory it cannot fsync, and keeps it for the next call") {
    TempDir dir;
    Started s(dir.path);
    auto req = request("b", "k");
    auto staged = s.w.stage(req, {png(4, 4, 1)});
    REQUIRE_FALSE(staged.error);
    auto c = completion_for(req, staged);
    s.w.place(c);
    fs::remove_all(dir.path + "/b");  // the directory of the rename is gone: open fails
    CHECK_THROWS_WITH_AS(s.w.sync_dirs(),
                         ("fsync " + dir.path + "/b: No such file or directory").c_str(),
                         std::runtime_error);
    CHECK_THROWS_AS(s.w.sync_dirs(), std::runtime_error);  // still remembered
    fs::create_directories(dir.path + "/b");
    CHECK_NOTHROW(s.w.sync_dirs());
}

TEST_CASE("a starting instance keeps a live instance's temporary files, removes a dead one's") {
    TempDir dir;
    auto req = request("b", "k");
    auto live = std::make_unique<Started>(dir.path, "aaaa");
    auto staged = live->w.stage(req, {png(4, 4, 1)});
    REQUIRE_FALSE(staged.error);
    std::string live_tmp = live->w.temp_path(req.request_id, req.attempt_no, staged.outputs[0].idx);
    {
        OutputWriter second(dir.path, "bbbb");
        REQUIRE_FALSE(second.start());
        CHECK_FALSE(second.exclusive());  // the first one is live
        CHECK(second.stale_removed() == 0);
        CHECK(fs::exists(live_tmp));
        // Even with the same tag, it takes another directory.
        OutputWriter same_tag(dir.path, "aaaa");
        REQUIRE_FALSE(same_tag.start());
        CHECK(same_tag.temp_path(1, 1, 0) == dir.path + "/.imgbatch-tmp/aaaa-2/1/1-1-0.tmp");
        CHECK(fs::exists(live_tmp));
    }
    live.reset();  // the first instance is gone: its lock is free
    OutputWriter third(dir.path, "cccc");
    REQUIRE_FALSE(third.start());
    CHECK(third.exclusive());
    CHECK(third.stale_removed() == 1);
    CHECK_FALSE(fs::exists(live_tmp));
    CHECK_FALSE(fs::exists(dir.path + "/.imgbatch-tmp/aaaa"));
    CHECK_FALSE(fs::exists(dir.path + "/.imgbatch-tmp/bbbb"));
}

TEST_CASE("remove_orphans removes unrecorded final files of attempted requests only") {
    TempDir dir;
    jobs::Store store(dir.path + "/t.db");
    using jobs::testing::item;
    auto enq = store.enqueue(
        "b", {item("one", 2, 2, "k"), item("two", 1, 1, "done"), item("three", 1, 1, "fresh")});
    auto claimed = store.claim("p1", "old", 2, jobs::unix_now(), 60);
    REQUIRE(claimed.size() == 2);  // k and done; fresh was never attempted
    // done: its image is recorded; k: its attempt was lost (lease expired).
    auto c = jobs::testing::completion(claimed[1], "old", 1);
    OutputWriter w(dir.path + "/out", "abcd1234");  // for names only: never started
    std::string recorded = w.final_path("b", "done", enq.job_ids[1], 0, "png");
    c.outputs[0].path = recorded;
    std::vector<jobs::Completion> group{c};
    store.apply(group);
    store.requeue_expired(jobs::unix_now() + 120);

    fs::create_directories(dir.path + "/out/b");
    std::string orphan0 = w.final_path("b", "k", enq.job_ids[0], 0, "png");
    std::string orphan1 = w.final_path("b", "k", enq.job_ids[0], 1, "jpg");
    std::string orphan_alt = dir.path + "/out/b/k-0~2.png";
    std::string fresh = w.final_path("b", "fresh", enq.job_ids[2], 0, "png");
    std::string other = dir.path + "/out/b/notes.txt";
    std::string old_tmp = dir.path + "/out/b/.k-0.png.deadbeef.1.tmp";
    for (const auto& p : {orphan0, orphan1, orphan_alt, recorded, fresh, other, old_tmp})
        std::ofstream(p) << "x";

    {
        OutputWriter live(dir.path + "/out", "live");
        REQUIRE_FALSE(live.start());
        live.share();
        OutputWriter second(dir.path + "/out", "second");
        REQUIRE_FALSE(second.start());
        CHECK_FALSE(second.exclusive());
        CHECK(second.remove_orphans(store) == 0);  // another instance is live: nothing removed
        CHECK(fs::exists(orphan0));
    }
    OutputWriter alone(dir.path + "/out", "alone");
    REQUIRE_FALSE(alone.start());
    CHECK(alone.exclusive());
    CHECK(alone.remove_orphans(store) == 4);
    CHECK_FALSE(alone.exclusive());
    for (const auto& p : {orphan0, orphan1, orphan_alt, old_tmp}) CHECK_FALSE(fs::exists(p));
    for (const auto& p : {recorded, fresh, other}) CHECK(fs::exists(p));
}

TEST_CASE("owner tags are 16 hex digits and differ between owners") {
    auto a = OutputWriter::tag_for("host:1:aaaa0000");
    auto b = OutputWriter::tag_for("host:2:bbbb1111");
    CHECK(a.size() == 16);
    CHECK(a != b);
}
