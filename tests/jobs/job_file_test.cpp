#include "jobs/job_file.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

using namespace imgbatch::jobs;
using namespace std::string_literals;

namespace {
JobDefaults defaults(std::string model = "gpt-image-2") {
    JobDefaults d;
    d.model = std::move(model);
    return d;
}
ParsedFile jsonl(std::string_view text, const JobDefaults& d = defaults()) {
    return parse_job_file(text, "in.jsonl", FileFormat::jsonl, d);
}
ParsedFile csv(std::string_view text, const JobDefaults& d = defaults()) {
    return parse_job_file(text, "in.csv", FileFormat::csv, d);
}
ParsedFile txt(std::string_view text, const JobDefaults& d = defaults()) {
    return parse_job_file(text, "in.txt", FileFormat::txt, d);
}
// The single error of a one-line file.
std::string only_error(const ParsedFile& f) {
    REQUIRE(f.errors.size() == 1);
    CHECK(f.jobs.empty());
    return f.errors[0].reason;
}
}  // namespace

TEST_CASE("format_from_name") {
    CHECK(format_from_name("a.jsonl") == FileFormat::jsonl);
    CHECK(format_from_name("a.ndjson") == FileFormat::jsonl);
    CHECK(format_from_name("dir.v2/a.JSON") == FileFormat::jsonl);
    CHECK(format_from_name("a.CSV") == FileFormat::csv);
    CHECK(format_from_name("prompts.txt") == FileFormat::txt);
    CHECK(format_from_name("-") == FileFormat::jsonl);
    CHECK_FALSE(format_from_name("a.xlsx").has_value());
    CHECK_FALSE(format_from_name("README").has_value());
    CHECK_FALSE(format_from_name("dir.v2/README").has_value());
}

TEST_CASE("empty files give one whole-file error") {
    for (auto fmt : {FileFormat::jsonl, FileFormat::csv, FileFormat::txt}) {
        for (const char* text : {"", "\n\n  \r\n", "\xEF\xBB\xBF"}) {
            auto f = parse_job_file(text, "e", fmt, defaults());
            REQUIRE(f.errors.size() == 1);
            CHECK(f.errors[0].line == 0);
            CHECK(f.errors[0].str() == "e:0: empty file: no jobs");
            CHECK(f.jobs.empty());
        }
    }
    CHECK(txt("# only\n   # comments\n").errors[0].reason == "empty file: no jobs");
    CHECK(csv("prompt,model\n\n").errors[0].reason == "empty file: no jobs");
}

TEST_CASE("JSONL job lines: fields, named parameters merged into params, line numbers") {
    auto f = jsonl(
        "\xEF\xBB\xBF{\"prompt\": \"a cat\", \"model\": \"dall-e-3\", \"n\": 3, \"size\": "
        "\"1024x1024\", \"quality\": \"hd\", \"key\": \"k1\", \"provider\": \"openai\", "
        "\"priority\": 5, \"params\": {\"user\": \"u\"}, \"metadata\": {\"row\": 7}}\r\n"
        "\r\n"
        "   \n"
        "{\"prompt\": \"a dog\", \"output_compression\": 50, \"aspect_ratio\": null}\n");
    REQUIRE(f.errors.empty());
    REQUIRE(f.jobs.size() == 2);
    const auto& a = f.jobs[0];
    CHECK(a.prompt == "a cat");
    CHECK(a.model == "dall-e-3");
    CHECK(a.n == 3);
    CHECK(a.key == "k1");
    CHECK(a.provider == "openai");
    CHECK(a.priority == 5);
    CHECK(a.params.at("size") == "1024x1024");
    CHECK(a.params.at("quality") == "hd");
    CHECK(a.params.at("user") == "u");
    CHECK(a.params.size() == 3);
    CHECK(a.metadata.at("row") == 7);
    CHECK(a.source == "in.jsonl");
    CHECK(a.line == 1);
    const auto& b = f.jobs[1];
    CHECK(b.line == 4);
    CHECK(b.model == "gpt-image-2");  // from the defaults
    CHECK(b.n == 1);
    CHECK(b.params.at("output_compression") == 50);
    CHECK_FALSE(b.params.contains("aspect_ratio"));  // null: not given
}

TEST_CASE("JSONL errors name the field, the line, and what was wrong") {
    CHECK(only_error(jsonl(R"({"prompt": "x", "sizee": "1024x1024"})"))
              .starts_with("unknown field 'sizee' (known: prompt, model, n, size, "));
    CHECK(only_error(jsonl(R"({"prompt": "x", "n": "3"})")) ==
          "field 'n': must be an integer, got \"3\"");
    CHECK(only_error(jsonl(R"({"prompt": "x", "n": 2.5})"))
              .starts_with("field 'n': must be an integer, got "));
    CHECK(only_error(jsonl(R"({"prompt": "x", "n": 99999999999})"))
              .starts_with("field 'n': out of range"));
    CHECK(only_error(jsonl(R"({"prompt": 5})")) == "field 'prompt': must be a string, got 5");
    CHECK(only_error(jsonl(R"({"model": "dall-e-3"})")) == "field 'prompt': required");
    CHECK(only_error(jsonl(R"({"prompt": "x", "params": [1]})")) ==
          "field 'params': must be an object, got [1]");
    CHECK(only_error(jsonl(R"({"prompt": "x", "quality": 1})")) ==
          "field 'quality': must be a string, got 1");
    CHECK(only_error(jsonl(R"({"prompt": "x", "size": "auto", "params": {"size": "auto"}})")) ==
          "field 'size': given twice (as a field and in params)");
    CHECK(only_error(jsonl(R"({"prompt": "x", "params": {"n": 2}})")) ==
          "field 'params.n': use the field 'n'");
    CHECK(only_error(jsonl(R"({"prompt": "x"})", JobDefaults{})) ==
          "field 'model': required (or give --model)");
    CHECK(only_error(jsonl(R"({"prompt": "x",)")).starts_with("malformed JSON: "));
    CHECK(only_error(jsonl(R"({"prompt": "x"} trailing)")).starts_with("malformed JSON: "));
    CHECK(only_error(jsonl(R"(["prompt"])")) == "line is not a JSON object");
}

TEST_CASE("JSONL: bad lines do not stop the good ones, and report their physical line") {
    auto f = jsonl(
        "{\"prompt\": \"one\"}\n"
        "\n"
        "{\"prompt\": \"two\", \"n\": \"x\"}\n"
        "{\"prompt\": \"three\"}\n"
        "{\"prompt\": \"four\", \"bad\xFF\": 1}\n"
        "{\"prompt\": \"nul\x00\"}\n"s);
    REQUIRE(f.jobs.size() == 2);
    CHECK(f.jobs[0].line == 1);
    CHECK(f.jobs[1].line == 4);
    REQUIRE(f.errors.size() == 3);
    CHECK(f.errors[0].str() == "in.jsonl:3: field 'n': must be an integer, got \"x\"");
    CHECK(f.errors[1].str() == "in.jsonl:5: line is not valid UTF-8 text");
    CHECK(f.errors[2].str() == "in.jsonl:6: line is not valid UTF-8 text");
}

TEST_CASE("binary junk and truncated files give errors, never a crash") {
    std::string junk;
    for (int i = 0; i < 4096; ++i) junk += static_cast<char>((i * 37 + 11) % 256);
    for (auto fmt : {FileFormat::jsonl, FileFormat::csv, FileFormat::txt}) {
        auto f = parse_job_file(junk, "junk", fmt, defaults());
        CHECK(f.jobs.empty());
        CHECK_FALSE(f.errors.empty());
    }
    // Every prefix of a file cut anywhere: inside quotes, between \r and \n, mid-character.
    const std::string sample =
        "prompt,n,params.seed\r\n\"a, \"\"b\"\"\nc\",2,7\r\n\"\xE7\x8C\xAB\",1,\r\nlast,3,9";
    for (std::size_t cut = 0; cut <= sample.size(); ++cut) {
        auto f = csv(std::string_view(sample).substr(0, cut));
        for (const auto& e : f.errors) CHECK(e.line >= 0);
        for (const auto& j : f.jobs) CHECK(j.line >= 2);
    }
    auto whole = csv(sample);
    CHECK(whole.errors.empty());
    CHECK(whole.jobs.size() == 3);
}

TEST_CASE("defaults fill only what a line does not say") {
    JobDefaults d;
    d.model = "dall-e-2";
    d.provider = "relay";
    d.n = 4;
    d.priority = 9;
    auto f = jsonl(
        "{\"prompt\": \"a\"}\n"
        "{\"prompt\": \"b\", \"model\": \"dall-e-3\", \"provider\": \"openai\", "
        "\"n\": 1, \"priority\": 0}\n",
        d);
    REQUIRE(f.jobs.size() == 2);
    CHECK(f.jobs[0].model == "dall-e-2");
    CHECK(f.jobs[0].provider == "relay");
    CHECK(f.jobs[0].n == 4);
    CHECK(f.jobs[0].priority == 9);
    CHECK(f.jobs[1].model == "dall-e-3");
    CHECK(f.jobs[1].provider == "openai");
    CHECK(f.jobs[1].n == 1);
    CHECK(f.jobs[1].priority == 0);
}

TEST_CASE("OpenAI Batch API lines") {
    auto f = jsonl(
        R"({"custom_id": "req-1", "method": "POST", "url": "/v1/images/generations",)"
        R"( "body": {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "1024x1792",)"
        R"( "style": "vivid", "response_format": "b64_json", "user": "me"}})");
    REQUIRE(f.errors.empty());
    REQUIRE(f.jobs.size() == 1);
    const auto& j = f.jobs[0];
    CHECK(j.key == "req-1");
    CHECK(j.model == "dall-e-3");
    CHECK(j.prompt == "a lighthouse");
    CHECK(j.params.at("size") == "1024x1792");
    CHECK(j.params.at("style") == "vivid");
    CHECK(j.params.at("response_format") == "b64_json");
    CHECK(j.params.at("user") == "me");

    CHECK(only_error(jsonl(R"({"custom_id": "r", "method": "POST", "url": "/v1/chat/completions",)"
                           R"( "body": {"prompt": "x"}})")) ==
          "field 'url': must be \"/v1/images/generations\", got \"/v1/chat/completions\"");
    CHECK(only_error(jsonl(R"({"custom_id": "r", "method": "GET", "url": "/v1/images/generations",)"
                           R"( "body": {"prompt": "x"}})"))
              .starts_with("field 'method': must be \"POST\""));
    CHECK(only_error(
              jsonl(R"({"custom_id": "r", "method": "POST", "url": "/v1/images/generations"})"))
              .starts_with("field 'body': required"));
    CHECK(
        only_error(jsonl(R"({"custom_id": "r", "method": "POST", "url": "/v1/images/generations",)"
                         R"( "body": {"prompt": "x", "n": "2"}})")) ==
        "field 'body.n': must be an integer, got \"2\"");
    CHECK(only_error(jsonl(R"({"custom_id": 3, "method": "POST", "url": "/v1/images/generations",)"
                           R"( "body": {"prompt": "x"}})"))
              .starts_with("field 'custom_id': must be a non-empty string"));
    CHECK(
        only_error(jsonl(R"({"custom_id": "r", "method": "POST", "url": "/v1/images/generations",)"
                         R"( "body": {"prompt": "x"}, "extra": 1})"))
            .starts_with("unknown field 'extra' in a Batch API line"));
}

TEST_CASE("CSV: quoting per RFC 4180, line numbers where records start") {
    auto f =
        csv("\xEF\xBB\xBFprompt, model ,n,size,params.seed,metadata.row\r\n"
            "\"a cat, sitting\",dall-e-3,1,1024x1024,7,r1\r\n"
            "\"she said \"\"hi\"\"\nacross lines\",,2,,,\r\n"
            "\r\n"
            "plain prompt , gpt-image-2 , 3 ,auto\r\n"
            ",,,,,\n"
            "\"  kept as written  \",,,,,\n"
            "last,,,,,");
    REQUIRE(f.errors.empty());
    REQUIRE(f.jobs.size() == 5);
    CHECK(f.jobs[0].prompt == "a cat, sitting");
    CHECK(f.jobs[0].model == "dall-e-3");
    CHECK(f.jobs[0].params.at("size") == "1024x1024");
    CHECK(f.jobs[0].params.at("seed") == "7");  // params.X cells are strings
    CHECK(f.jobs[0].metadata.at("row") == "r1");
    CHECK(f.jobs[0].line == 2);
    CHECK(f.jobs[1].prompt == "she said \"hi\"\nacross lines");
    CHECK(f.jobs[1].model == "gpt-image-2");  // empty cell: the default
    CHECK(f.jobs[1].n == 2);
    CHECK(f.jobs[1].params.empty());
    CHECK(f.jobs[1].line == 3);
    CHECK(f.jobs[2].prompt == "plain prompt");
    CHECK(f.jobs[2].n == 3);
    CHECK(f.jobs[2].params.at("size") == "auto");
    CHECK(f.jobs[2].line == 6);
    CHECK(f.jobs[3].prompt == "  kept as written  ");
    CHECK(f.jobs[3].line == 8);
    CHECK(f.jobs[4].prompt == "last");
    CHECK(f.jobs[4].line == 9);
}

TEST_CASE("CSV: a header with an unknown column is one error at line 1 and no jobs") {
    auto f = csv("prompt,sizee,colour\nx,1,2\ny,3,4\n");
    CHECK(f.jobs.empty());
    REQUIRE(f.errors.size() == 1);
    CHECK(f.errors[0].line == 1);
    CHECK(f.errors[0].reason.starts_with("unknown columns 'sizee', 'colour' (known: prompt,"));
    CHECK(only_error(csv("model,n\nx,1\n")).starts_with("no 'prompt' column"));
    CHECK(only_error(csv("prompt,n,n\nx,1,1\n")) == "column 'n' appears twice");
    CHECK(only_error(csv("prompt,params.size\nx,auto\n")) ==
          "column 'params.size': use the column 'size'");
}

TEST_CASE("CSV: cell errors name the line and the column") {
    auto f =
        csv("prompt,n,priority,output_compression\n"
            "a,two,,\n"
            "b,1,,\n"
            "c,1,high,\n"
            "d,1,,5x\n"
            "e,1,2,3,4\n"
            "f\n");
    REQUIRE(f.jobs.size() == 2);
    CHECK(f.jobs[0].prompt == "b");
    CHECK(f.jobs[1].prompt == "f");  // fewer cells: the rest not given
    REQUIRE(f.errors.size() == 4);
    CHECK(f.errors[0].str() == "in.csv:2: field 'n' (column 2): must be an integer, got \"two\"");
    CHECK(f.errors[1].str() ==
          "in.csv:4: field 'priority' (column 3): must be an integer, got \"high\"");
    CHECK(f.errors[2].line == 5);
    CHECK(f.errors[2].reason.starts_with("field 'output_compression' (column 4)"));
    CHECK(f.errors[3].str() ==
          "in.csv:6: 5 fields but the header has 4 columns (quote a field that contains a comma)");
}

TEST_CASE("CSV: quoting errors and bad bytes") {
    auto open = csv("prompt,model\nok,dall-e-3\n\"never closed,dall-e-3\nmore\n");
    REQUIRE(open.jobs.size() == 1);
    REQUIRE(open.errors.size() == 1);
    CHECK(open.errors[0].line == 3);
    CHECK(open.errors[0].reason.starts_with("unterminated quoted field (opened on line 3)"));

    auto after = csv("prompt,n\n\"a\"b,1\nfine,1\n");
    REQUIRE(after.jobs.size() == 1);
    CHECK(after.jobs[0].line == 3);
    REQUIRE(after.errors.size() == 1);
    CHECK(after.errors[0].line == 2);
    CHECK(after.errors[0].reason.starts_with("column 1: text after a closing quote"));

    // A lone CR after a closing quote is not a line end: the text after it is not dropped.
    auto cr = csv("prompt,n\n\"a\"\rb,1\n\"c\"\r,1\n\"d\"\r\n\"e\"\r");
    REQUIRE(cr.jobs.size() == 2);
    CHECK(cr.jobs[0].prompt == "d");
    CHECK(cr.jobs[1].prompt == "e");
    REQUIRE(cr.errors.size() == 2);
    CHECK(cr.errors[0].line == 2);
    CHECK(cr.errors[0].reason.starts_with("column 1: text after a closing quote"));
    CHECK(cr.errors[1].line == 3);
    CHECK(cr.errors[1].reason.starts_with("column 1: text after a closing quote"));

    auto bytes = csv("prompt,n\nbad\xC0\xAF,1\n");
    CHECK(only_error(bytes) == "line is not valid UTF-8 text");

    auto json =
        csv("prompt,params,metadata\nx,\"{\"\"seed\"\": 3}\",\"{\"\"a\"\": [1]}\"\n"
            "y,[1],\n");
    REQUIRE(json.jobs.size() == 1);
    CHECK(json.jobs[0].params.at("seed") == 3);
    CHECK(json.jobs[0].metadata.at("a").is_array());
    REQUIRE(json.errors.size() == 1);
    CHECK(json.errors[0].reason == "field 'params' (column 2): must be a JSON object, got [1]");
    CHECK(only_error(csv("prompt,size,params\nx,auto,\"{\"\"size\"\": \"\"auto\"\"}\"\n")) ==
          "field 'size': given twice (as a field and in params)");
    CHECK(only_error(csv("prompt,params,params.seed\nx,\"{\"\"seed\"\": 1}\",2\n")) ==
          "field 'params.seed': given twice");
}

TEST_CASE("TXT: one trimmed prompt a line, comments and blanks skipped") {
    auto f =
        txt("\xEF\xBB\xBF# header comment\r\n"
            "  a quiet harbour at dawn  \r\n"
            "\r\n"
            "\t# indented comment\n"
            "a \"quoted\" prompt, with commas\n"
            "\xFF\xFE\n");
    REQUIRE(f.jobs.size() == 2);
    CHECK(f.jobs[0].prompt == "a quiet harbour at dawn");
    CHECK(f.jobs[0].line == 2);
    CHECK(f.jobs[0].model == "gpt-image-2");
    CHECK(f.jobs[0].source == "in.txt");
    CHECK(f.jobs[1].prompt == "a \"quoted\" prompt, with commas");
    CHECK(f.jobs[1].line == 5);
    REQUIRE(f.errors.size() == 1);
    CHECK(f.errors[0].str() == "in.txt:6: line is not valid UTF-8 text");

    auto none = txt("a prompt\n", JobDefaults{});
    CHECK(only_error(none) == "field 'model': required (or give --model)");
}

TEST_CASE("a large JSONL file parses every line") {
    std::string big;
    const int lines = 20000;
    for (int i = 0; i < lines; ++i)
        big += R"({"prompt": "prompt number )" + std::to_string(i) +
               R"(", "n": 2, "size": "1024x1024", "metadata": {"i": )" + std::to_string(i) + "}}\n";
    auto f = jsonl(big);
    CHECK(f.errors.empty());
    REQUIRE(f.jobs.size() == static_cast<std::size_t>(lines));
    CHECK(f.jobs.back().line == lines);
    CHECK(f.jobs.back().metadata.at("i") == lines - 1);
    CHECK(f.jobs[123].prompt == "prompt number 123");
}

// ---- streaming: read_job_file pulls its input piece by piece ----

namespace {

// Everything a reader reported, in order, as text that compares easily.
struct Collect : JobSink {
    std::vector<std::string> events;
    void job(JobSpec&& s) override {
        events.push_back("job " + std::to_string(s.line) + " " + s.source + " [" + s.prompt + "] " +
                         s.model + " n=" + std::to_string(s.n) + " key=" + s.key +
                         " params=" + boost::json::serialize(s.params) +
                         " metadata=" + boost::json::serialize(s.metadata));
    }
    void error(LineError&& e) override { events.push_back("error " + e.str()); }
};

// A ReadFn giving text at most `piece` bytes a call.
ReadFn pieces(std::string_view text, std::size_t piece) {
    return [text, piece](char* buf, std::size_t size) mutable {
        const std::size_t n = std::min({size, piece, text.size()});
        std::memcpy(buf, text.data(), n);
        text.remove_prefix(n);
        return n;
    };
}

std::vector<std::string> streamed(std::string_view text, FileFormat fmt, std::size_t piece) {
    Collect c;
    read_job_file(pieces(text, piece), "in", fmt, defaults(), c);
    return c.events;
}

}  // namespace

TEST_CASE("streaming: any split of the input gives the same jobs and errors") {
    const std::vector<std::pair<FileFormat, std::string>> inputs{
        {FileFormat::jsonl,
         "\xEF\xBB\xBF{\"prompt\": \"a\", \"n\": 2, \"key\": \"k1\", \"size\": \"auto\"}\r\n"
         "\n"
         "{\"prompt\": \"broken\", \n"
         "   \r\n"
         "{\"custom_id\": \"c\", \"method\": \"POST\", \"url\": \"/v1/images/generations\", "
         "\"body\": {\"prompt\": \"batch line\", \"model\": \"dall-e-3\"}}\n"
         "\xC0\xAF junk\n"
         "{\"prompt\": \"no newline at the end\", \"metadata\": {\"m\": [1, 2]}}"},
        {FileFormat::csv,
         "\xEF\xBB\xBFprompt, model ,n,params.seed,metadata.row\r\n"
         "\"a cat, sitting\",dall-e-3,1,7,r1\r\n"
         "\"she said \"\"hi\"\"\nacross\r\nlines\",,2,,\r\n"
         "\r\n"
         "plain , gpt-image-2 , 3 \r\n"
         "bad,,two,,\n"
         "\"a\"b,,1,,\n"
         "x,,1,,,,\n"
         "last,,,,"},
        {FileFormat::csv, "prompt,n\nok,1\n\"never closed,1\nmore\n"},
        {FileFormat::csv, "prompt,colour\nx,1\n"},
        {FileFormat::txt, "# c\r\n  a harbour  \r\n\r\n\t# c2\nsecond\n\xFF\xFE\nlast"},
        {FileFormat::jsonl, ""},
        {FileFormat::csv, "\n\n"},
    };
    for (const auto& [fmt, text] : inputs) {
        const auto whole = streamed(text, fmt, text.size() + 1);
        // parse_job_file reads the same way.
        auto parsed = parse_job_file(text, "in", fmt, defaults());
        CHECK(whole.size() == parsed.jobs.size() + parsed.errors.size());
        REQUIRE(!whole.empty());
        for (std::size_t piece : {1, 2, 3, 5, 7, 64}) {
            INFO("input: " << text << "\npiece: " << piece);
            CHECK(streamed(text, fmt, piece) == whole);
        }
    }
}

TEST_CASE("streaming: a CSV quoted field may span any number of reads") {
    std::string cell(300000, 'a');
    cell[1000] = '\n';
    const std::string text = "prompt,n\n\"" + cell + "\",2\nnext,1\n";
    auto events = streamed(text, FileFormat::csv, 4096);
    REQUIRE(events.size() == 2);
    CHECK(events[0].starts_with("job 2 in [aaa"));
    CHECK(events[0].find(" n=2 ") != std::string::npos);
    CHECK(events[1].starts_with("job 4 in [next]"));
}

TEST_CASE("streaming: a line longer than the limit is one error, and reading goes on") {
    // Generated as it is read: the reader must not hold the whole line either.
    const std::size_t huge = kMaxLineBytes + 100;
    std::size_t sent = 0;
    const std::string tail = "\n{\"prompt\": \"after\"}\n";
    std::size_t tail_sent = 0;
    ReadFn gen = [&](char* buf, std::size_t size) -> std::size_t {
        if (sent < huge) {
            const std::size_t n = std::min(size, huge - sent);
            std::memset(buf, 'x', n);
            if (sent == 0) buf[0] = '{';
            sent += n;
            return n;
        }
        const std::size_t n = std::min(size, tail.size() - tail_sent);
        std::memcpy(buf, tail.data() + tail_sent, n);
        tail_sent += n;
        return n;
    };
    for (auto fmt : {FileFormat::jsonl, FileFormat::txt}) {
        sent = tail_sent = 0;
        Collect c;
        read_job_file(gen, "big", fmt, defaults(), c);
        REQUIRE(c.events.size() == 2);
        CHECK(c.events[0] ==
              "error big:1: line longer than " + std::to_string(kMaxLineBytes >> 20) + " MiB");
        CHECK(c.events[1].starts_with("job 2 big ["));
    }
    sent = tail_sent = 0;
    Collect c;
    const std::string head = "prompt\n\"";
    std::size_t head_sent = 0;
    ReadFn csv_gen = [&](char* buf, std::size_t size) -> std::size_t {
        if (head_sent < head.size()) {
            const std::size_t n = std::min(size, head.size() - head_sent);
            std::memcpy(buf, head.data() + head_sent, n);
            head_sent += n;
            return n;
        }
        return gen(buf, size);
    };
    read_job_file(csv_gen, "big.csv", FileFormat::csv, defaults(), c);
    REQUIRE(c.events.size() == 1);
    CHECK(c.events[0] == "error big.csv:2: record longer than " +
                             std::to_string(kMaxLineBytes >> 20) +
                             " MiB (an unterminated quoted field?)");
}

TEST_CASE("streaming: a read error is passed on to the caller") {
    int calls = 0;
    ReadFn failing = [&](char* buf, std::size_t) -> std::size_t {
        if (++calls == 1) {
            std::memcpy(buf, "{\"prompt\": \"first\"}\n{\"pro", 25);
            return 25;
        }
        throw std::runtime_error("Input/output error");
    };
    Collect c;
    CHECK_THROWS_WITH(read_job_file(failing, "f", FileFormat::jsonl, defaults(), c),
                      "Input/output error");
    REQUIRE(c.events.size() == 1);
    CHECK(c.events[0].starts_with("job 1 f [first]"));
}
