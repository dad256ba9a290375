#include "jobs/catalog.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <stdexcept>
#include <string>

using namespace imgbatch::jobs;

namespace {
boost::json::object obj(const char* json) {
    return boost::json::parse(json).as_object();
}

bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

std::string config_error(const char* json) {
    auto c = Catalog::builtin();
    try {
        c.apply_config(obj(json));
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST_CASE("the built-in catalog has every model of the SPEC with its limits") {
    auto c = Catalog::builtin();
    struct Row {
        const char* name;
        int max;
        std::size_t prompt;
    };
    const Row rows[] = {
        {"dall-e-2", 10, 1000},
        {"dall-e-3", 1, 4000},
        {"gpt-image-1", 10, 32000},
        {"gpt-image-1-mini", 10, 32000},
        {"gpt-image-1.5", 10, 32000},
        {"gpt-image-2", 10, 32000},
        {"gpt-image-2-2026-04-21", 10, 32000},
        {"sora_image", 1, 32000},
        {"flux-kontext-pro", 1, 32000},
        {"imagen-3.0-generate-002", 4, 1920},
        {"imagen-4.0-generate-001", 4, 1920},
        {"imagen-4.0-fast-generate-001", 4, 1920},
        {"imagen-4.0-generate-preview-05-20", 4, 1920},
        {"imagen-4.0-generate-preview-06-06", 4, 1920},
        {"imagen-4.0-ultra-generate-001", 1, 1920},
        {"imagen-4.0-ultra-generate-exp-05-20", 1, 1920},
        {"imagen-4.0-ultra-generate-preview-06-06", 1, 1920},
        {"gemini-2.5-flash-image", 1, 32000},
        {"gemini-3.1-flash-image-preview", 1, 32000},
        {"gemini-3-pro-image-preview", 1, 32000},
        {"chatgpt-image-latest", 10, 32000},
        {"gpt-image-2-all", 1, 32000},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        const ModelInfo* m = c.find(r.name);
        REQUIRE(m != nullptr);
        CHECK(m->name == r.name);
        CHECK(m->max_per_request == r.max);
        CHECK(m->prompt_limit == r.prompt);
        CHECK_FALSE(m->open);
    }
    CHECK(c.names().size() == std::size(rows));
    CHECK(c.find("gpt-image-3") == nullptr);
    CHECK(c.find("") == nullptr);
}

TEST_CASE("built-in parameters per family") {
    auto c = Catalog::builtin();
    const auto* d3 = c.find("dall-e-3");
    CHECK(d3->sizes == std::vector<std::string>{"1024x1024", "1792x1024", "1024x1792"});
    CHECK(d3->enums.at("style") == std::vector<std::string>{"vivid", "natural"});
    CHECK(d3->enums.at("quality") == std::vector<std::string>{"standard", "hd"});

    const auto* g1 = c.find("gpt-image-1");
    CHECK(has(g1->sizes, "auto"));
    CHECK_FALSE(g1->free_size);
    CHECK(g1->int_ranges.at("output_compression") == std::pair{0, 100});
    CHECK(g1->enums.count("style") == 0);
    CHECK(c.find("gpt-image-2")->free_size);

    const auto* relay = c.find("sora_image");
    CHECK_FALSE(has(relay->sizes, "auto"));  // relays refuse an explicit auto
    CHECK(relay->enums.count("moderation") == 0);

    const auto* i3 = c.find("imagen-3.0-generate-002");
    CHECK(i3->sizes.empty());
    CHECK(i3->image_sizes.empty());  // no 1K/2K for Imagen 3
    CHECK(i3->aspect_ratios.size() == 5);
    CHECK_FALSE(i3->prompt_note.empty());
    const auto* i4 = c.find("imagen-4.0-generate-001");
    CHECK(i4->image_sizes == std::vector<std::string>{"1K", "2K"});
    CHECK(i4->enums.at("person_generation").size() == 3);
}

TEST_CASE("apply_config overrides a built-in model field by field") {
    auto c = Catalog::builtin();
    c.apply_config(obj(R"({"gpt-image-1": {"max_per_request": 4, "sizes": ["1024x1024"],
                          "enums": {"quality": ["low"], "moderation": []},
                          "int_ranges": {"output_compression": [10, 90]}}})"));
    const auto* m = c.find("gpt-image-1");
    CHECK(m->max_per_request == 4);
    CHECK(m->sizes == std::vector<std::string>{"1024x1024"});
    CHECK(m->enums.at("quality") == std::vector<std::string>{"low"});
    CHECK(m->enums.count("moderation") == 0);      // empty list: no longer accepted
    CHECK(m->enums.at("background").size() == 3);  // untouched
    CHECK(m->int_ranges.at("output_compression") == std::pair{10, 90});
    CHECK(m->prompt_limit == 32000);
    CHECK(c.find("gpt-image-1-mini")->max_per_request == 10);  // others untouched
}

TEST_CASE("apply_config adds models: like copies another, else an open custom model") {
    auto c = Catalog::builtin();
    c.apply_config(obj(R"({"my-dalle": {"like": "dall-e-3", "prompt_limit": 100},
                          "local-sd": {"max_per_request": 8, "prompt_limit": 500},
                          "flux-dev": {"family": "flux", "sizes": ["1024x1024"],
                                       "free_size": false}})"));
    const auto* like = c.find("my-dalle");
    REQUIRE(like);
    CHECK(like->name == "my-dalle");
    CHECK(like->family == "dall-e-3");
    CHECK(like->sizes.size() == 3);
    CHECK(like->prompt_limit == 100);
    CHECK_FALSE(like->open);
    CHECK(c.find("dall-e-3")->prompt_limit == 4000);

    const auto* custom = c.find("local-sd");
    REQUIRE(custom);
    CHECK(custom->family == "custom");
    CHECK(custom->open);
    CHECK(custom->max_per_request == 8);
    CHECK(custom->sizes.empty());

    const auto* flux = c.find("flux-dev");
    REQUIRE(flux);
    CHECK(flux->family == "flux");
    CHECK(flux->max_per_request == 1);
    CHECK(has(c.names(), "flux-dev"));

    // A later entry may be like an earlier one of the same config.
    c.apply_config(obj(R"({"a": {"like": "imagen-4.0-generate-001"}, "b": {"like": "a"}})"));
    CHECK(c.find("b")->max_per_request == 4);
}

TEST_CASE("apply_config names the model and field of a bad value") {
    CHECK(config_error(R"({"dall-e-3": {"max_per_request": 0}})")
              .starts_with("models.dall-e-3.max_per_request: "));
    CHECK(config_error(R"({"dall-e-3": {"max_per_request": "2"}})")
              .starts_with("models.dall-e-3.max_per_request: must be an integer"));
    CHECK(config_error(R"({"x": {"sizes": "1024x1024"}})").starts_with("models.x.sizes: "));
    CHECK(config_error(R"({"x": {"sizes": [1024]}})").starts_with("models.x.sizes: "));
    CHECK(config_error(R"({"x": {"free_size": 1}})").starts_with("models.x.free_size: "));
    CHECK(config_error(R"({"x": {"prompt_limit": -5}})").starts_with("models.x.prompt_limit: "));
    CHECK(config_error(R"({"x": {"enums": {"quality": "hd"}}})")
              .starts_with("models.x.enums.quality: "));
    CHECK(config_error(R"({"x": {"int_ranges": {"steps": [50, 1]}}})")
              .starts_with("models.x.int_ranges.steps: "));
    CHECK(config_error(R"({"x": {"int_ranges": {"steps": [1]}}})")
              .starts_with("models.x.int_ranges.steps: "));
    CHECK(config_error(R"({"x": {"like": "nope"}})") == "models.x.like: unknown model 'nope'");
    CHECK(config_error(R"({"x": {"sizez": []}})").starts_with("models.x.sizez: unknown field"));
    CHECK(config_error(R"({"x": 3})").starts_with("models.x: must be an object"));
    CHECK(config_error(R"({"x": {"max_per_request": 4294967297}})")
              .starts_with("models.x.max_per_request: "));
    CHECK(config_error(R"({"x": {"max_per_request": 2}})") == "(no error)");
}

TEST_CASE("Gemini image models: one image per call, imageConfig aspect ratios and sizes") {
    auto c = Catalog::builtin();
    const std::vector<std::string> ratios{"1:1", "2:3", "3:2",  "3:4",  "4:3",
                                          "4:5", "5:4", "9:16", "16:9", "21:9"};
    for (const char* name : {"gemini-2.5-flash-image", "gemini-3.1-flash-image-preview",
                             "gemini-3-pro-image-preview"}) {
        CAPTURE(name);
        const auto* m = c.find(name);
        REQUIRE(m);
        CHECK(m->family == "gemini-image");
        CHECK(m->max_per_request == 1);
        CHECK(std::equal(ratios.begin(), ratios.end(), m->aspect_ratios.begin(),
                         m->aspect_ratios.begin() + 10));
        CHECK(m->sizes.empty());
        CHECK_FALSE(m->free_size);
    }
    CHECK(c.find("gemini-2.5-flash-image")->image_sizes.empty());  // fixed 1024px class
    CHECK(c.find("gemini-3-pro-image-preview")->image_sizes ==
          std::vector<std::string>{"1K", "2K", "4K"});
    CHECK(c.find("gemini-2.5-flash-image")->aspect_ratios == ratios);
    CHECK(c.find("gemini-3-pro-image-preview")->aspect_ratios == ratios);
    const auto* flash31 = c.find("gemini-3.1-flash-image-preview");
    CHECK(flash31->image_sizes == std::vector<std::string>{"512", "1K", "2K", "4K"});
    CHECK(flash31->aspect_ratios.size() == 14);
    CHECK(has(flash31->aspect_ratios, "8:1"));
    CHECK(has(flash31->aspect_ratios, "1:4"));
}

TEST_CASE("gpt-image-2's dated snapshot follows gpt-image-2's rules") {
    auto c = Catalog::builtin();
    const auto* snap = c.find("gpt-image-2-2026-04-21");
    REQUIRE(snap);
    CHECK(snap->family == "gpt-image-2");
    CHECK(snap->free_size);
    CHECK(snap->max_per_request == c.find("gpt-image-2")->max_per_request);
}

namespace {
std::string file_error(const std::string& json) {
    try {
        Catalog::from_json(json, "cat.json");
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST_CASE("the built-in catalog is catalog/models.json: lifecycle of every model as announced") {
    auto c = Catalog::builtin();
    struct Row {
        const char* name;
        ModelStatus status;
        const char* date;
        const char* replacement;
    };
    const Row rows[] = {
        {"dall-e-2", ModelStatus::retired, "2026-05-12", "gpt-image-2"},
        {"dall-e-3", ModelStatus::retired, "2026-05-12", "gpt-image-2"},
        {"gpt-image-1", ModelStatus::retired, "2026-10-23", "gpt-image-2"},
        {"gpt-image-1.5", ModelStatus::deprecated, "2026-12-01", "gpt-image-2"},
        {"gpt-image-1-mini", ModelStatus::deprecated, "2026-12-01", "gpt-image-2"},
        {"chatgpt-image-latest", ModelStatus::deprecated, "2026-12-01", "gpt-image-2"},
        {"gpt-image-2", ModelStatus::active, "", ""},
        {"gpt-image-2-2026-04-21", ModelStatus::active, "", ""},
        {"gpt-image-2-all", ModelStatus::active, "", ""},
        {"sora_image", ModelStatus::deprecated, "", "gpt-image-2-all"},
        {"flux-kontext-pro", ModelStatus::active, "", ""},
        {"imagen-3.0-generate-002", ModelStatus::retired, "2026-08-17", "gemini-2.5-flash-image"},
        {"imagen-4.0-generate-001", ModelStatus::retired, "2026-08-17", "gemini-2.5-flash-image"},
        {"imagen-4.0-ultra-generate-001", ModelStatus::retired, "2026-08-17",
         "gemini-3-pro-image-preview"},
        {"gemini-2.5-flash-image", ModelStatus::active, "", ""},
        {"gemini-3.1-flash-image-preview", ModelStatus::active, "", ""},
        {"gemini-3-pro-image-preview", ModelStatus::active, "", ""},
    };
    for (const auto& r : rows) {
        CAPTURE(r.name);
        const auto* m = c.find(r.name);
        REQUIRE(m);
        auto l = lifecycle_on(*m, "2026-11-21");
        CHECK(l.status == r.status);
        CHECK(l.date == r.date);
        CHECK(l.replacement == r.replacement);
    }
    // Every replacement is a model of the catalog, and every model names its API style.
    for (const auto& name : c.names()) {
        CAPTURE(name);
        const auto* m = c.find(name);
        CHECK_FALSE(m->api.empty());
        if (!m->replacement.empty()) CHECK(c.find(m->replacement));
    }
    CHECK(c.find("gpt-image-2")->api == "openai");
    CHECK(c.find("imagen-4.0-generate-001")->api == "google");
    CHECK(c.find("gemini-2.5-flash-image")->api == "gemini");
    const auto& rules = c.find("gpt-image-2")->free_rules;
    CHECK(rules.multiple == 16);
    CHECK(rules.max_ratio == 3);
    CHECK(rules.max_long == 3840);
    CHECK(rules.max_short == 2160);
    CHECK(rules.min_pixels == 655360);
    CHECK(rules.max_pixels == 8294400);
}

TEST_CASE("lifecycle_on: dates decide against the day asked") {
    ModelInfo m;
    m.name = "m";
    m.replacement = "n";
    CHECK(lifecycle_on(m, "2026-11-21").status == ModelStatus::active);
    m.status = ModelStatus::deprecated;
    m.shutdown = "2026-12-01";
    CHECK(lifecycle_on(m, "2026-11-30").status == ModelStatus::deprecated);
    CHECK(lifecycle_on(m, "2026-12-01").status == ModelStatus::retired);  // the day it stops
    CHECK(lifecycle_on(m, "2027-01-01").date == "2026-12-01");
    m.shutdown.clear();  // deprecated without a day: deprecated whatever the day
    CHECK(lifecycle_on(m, "2999-01-01").status == ModelStatus::deprecated);
    m.status = ModelStatus::retired;
    m.retired = "2026-05-12";
    CHECK(lifecycle_on(m, "2026-05-12").status == ModelStatus::retired);
    CHECK(lifecycle_on(m, "2026-05-11").status == ModelStatus::deprecated);  // not yet
    CHECK(lifecycle_on(m, "2026-05-11").replacement == "n");
    m.retired.clear();
    CHECK(lifecycle_on(m, "2000-01-01").status == ModelStatus::retired);
    CHECK(today_utc().size() == 10);
    CHECK(is_iso_date(today_utc()));
}

TEST_CASE("is_iso_date") {
    CHECK(is_iso_date("2026-12-01"));
    CHECK(is_iso_date("2028-02-29"));
    CHECK_FALSE(is_iso_date("2026-02-29"));
    CHECK_FALSE(is_iso_date("2026-13-01"));
    CHECK_FALSE(is_iso_date("2026-00-10"));
    CHECK_FALSE(is_iso_date("2026-1-01"));
    CHECK_FALSE(is_iso_date("2026/12/01"));
    CHECK_FALSE(is_iso_date("tomorrow"));
}

TEST_CASE("from_json: a catalog file replaces the built-in one; bad entries named") {
    auto c = Catalog::from_json(R"({
        // comments are allowed
        "format": 1,
        "models": {
          "base": {"family": "gpt-image", "api": "openai", "max_per_request": 2,
                   "sizes": ["1024x1024"], "status": "deprecated", "shutdown": "2030-01-01",
                   "replacement": "next"},
          "next": {"like": "base", "status": "active", "free_size": {"multiple": 8,
                   "max_long": 2048, "max_short": 1024, "min_pixels": 0,
                   "max_pixels": 2097152}},
        }})",
                                "cat.json");
    CHECK(c.names() == std::vector<std::string>{"base", "next"});
    const auto* base = c.find("base");
    CHECK_FALSE(base->open);  // a file's model takes only what it describes
    CHECK(base->max_per_request == 2);
    CHECK(lifecycle_on(*base, "2029-12-31").status == ModelStatus::deprecated);
    const auto* next = c.find("next");
    CHECK(next->free_size);
    CHECK(next->free_rules.multiple == 8);
    CHECK(next->free_rules.max_ratio == 3);  // not given: gpt-image-2's
    CHECK(lifecycle_on(*next, "2040-01-01").status == ModelStatus::active);

    CHECK(file_error("[]").starts_with("cat.json: must be a JSON object"));
    CHECK(file_error("{").starts_with("cat.json: not valid JSON"));
    CHECK(file_error(R"({"format": 2, "models": {}})") == "cat.json: format: must be 1, got 2");
    CHECK(file_error(R"({"format": 1})") == "cat.json: models: required, an object of models");
    CHECK(file_error(R"({"models": {}, "prices": {}})")
              .starts_with("cat.json: unknown key 'prices'"));
    CHECK(file_error(R"({"models": {"x": {"max_per_request": 1}}})") ==
          "cat.json: models.x.family: required for a new model");
    CHECK(file_error(R"({"models": {"x": {"family": "f", "status": "gone"}}})")
              .starts_with("cat.json: models.x.status: must be active, deprecated or retired"));
    CHECK(file_error(R"({"models": {"x": {"family": "f", "shutdown": "2026-12-32"}}})")
              .starts_with("cat.json: models.x.shutdown: must be a date YYYY-MM-DD"));
    CHECK(file_error(R"({"models": {"x": {"family": "f", "replacement": "y"}}})") ==
          "cat.json: models.x.replacement: unknown model 'y'");
    CHECK(file_error(R"({"models": {"x": {"family": "f", "free_size": {"max_long": 100,
          "max_short": 200}}}})")
              .starts_with("cat.json: models.x.free_size.max_short: must be <="));
    CHECK(file_error(R"({"models": {"x": {"family": "f", "free_size": {"side": 1}}}})")
              .starts_with("cat.json: models.x.free_size.side: unknown rule"));
}

TEST_CASE("apply_config overrides a model's lifecycle (an operator's update)") {
    auto c = Catalog::builtin();
    c.apply_config(obj(R"({"gpt-image-2": {"status": "deprecated", "shutdown": "2027-06-01",
                                            "replacement": "gemini-3-pro-image-preview"},
                          "dall-e-3": {"status": "active"}})"));
    auto l = lifecycle_on(*c.find("gpt-image-2"), "2026-11-21");
    CHECK(l.status == ModelStatus::deprecated);
    CHECK(l.date == "2027-06-01");
    CHECK(l.replacement == "gemini-3-pro-image-preview");
    CHECK(lifecycle_on(*c.find("dall-e-3"), "2026-11-21").status == ModelStatus::active);
    // The snapshot was copied when the catalog was read: it keeps its own lifecycle.
    CHECK(lifecycle_on(*c.find("gpt-image-2-2026-04-21"), "2026-11-21").status ==
          ModelStatus::active);
    CHECK(config_error(R"({"x": {"open": "yes"}})").starts_with("models.x.open: "));
}
