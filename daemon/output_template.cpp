#include "daemon/output_template.hpp"

#include <algorithm>

namespace imgbatch::daemon {

const std::vector<std::string>& NameTemplate::tokens() {
    static const std::vector<std::string> all{"batch", "key",  "job",        "index",
                                              "model", "date", "prompt_slug"};
    return all;
}

NameTemplate NameTemplate::parse(std::string_view text) {
    auto fail = [&](const std::string& what) {
        throw std::invalid_argument("output_name \"" + std::string(text) + "\": " + what);
    };
    NameTemplate t;
    t.source = std::string(text);
    if (text.empty()) return t;
    if (text.front() == '/') fail("must be a relative path (below output_dir)");
    for (unsigned char c : text) {
        if (c < 0x20 || c == 0x7F) fail("control characters are not allowed");
        if (c == '\\') fail("'\\' is not allowed (use '/' between directories)");
        if (c == '~') fail("'~' is reserved for the names imgbatch makes unique");
    }
    std::vector<Part> comp;
    std::string literal;
    auto flush_literal = [&] {
        if (!literal.empty()) comp.push_back({false, std::move(literal)});
        literal.clear();
    };
    auto end_component = [&] {
        flush_literal();
        if (comp.empty()) fail("empty path component (\"//\" or a trailing '/')");
        if (!comp.front().token) {
            const auto& lit = comp.front().text;
            if (comp.size() == 1 && (lit == "." || lit == ".."))
                fail("\".\" and \"..\" components are not allowed");
            if (lit.front() == '.') fail("a component may not start with a dot");
        }
        t.components.push_back(std::move(comp));
        comp.clear();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '/') {
            end_component();
        } else if (c == '{') {
            auto close = text.find('}', i);
            if (close == std::string_view::npos) fail("'{' without '}'");
            std::string name(text.substr(i + 1, close - i - 1));
            const auto& known = tokens();
            if (std::find(known.begin(), known.end(), name) == known.end()) {
                std::string list;
                for (const auto& k : known) list += (list.empty() ? "{" : ", {") + k + "}";
                fail("unknown token {" + name + "} (known: " + list + ")");
            }
            flush_literal();
            comp.push_back({true, std::move(name)});
            i = close;
        } else if (c == '}') {
            fail("'}' without '{'");
        } else {
            literal += c;
        }
    }
    end_component();
    const auto& last = t.components.back();
    const std::size_t n = last.size();
    t.ends_with_job_index = n >= 3 && last[n - 1].token && last[n - 1].text == "index" &&
                            !last[n - 2].token && last[n - 2].text == "-" && last[n - 3].token &&
                            last[n - 3].text == "job" &&
                            (n == 3 || (!last[n - 4].token && last[n - 4].text.back() == '-'));
    return t;
}

}  // namespace imgbatch::daemon
