// Output file names: the one place that decides them (OutputWriter::final_path).
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "daemon/engine/output_files.hpp"
#include "daemon/engine/output_writer.hpp"
#include "daemon/image.hpp"
#include "jobs/text.hpp"

namespace imgbatch::daemon {

// File names, and why two outputs never share one.
//
// A final path is D/B/F where D is output_dir, B = name_component(batch name, false) and
// F = S + "-" + idx + "." + ext, S = "job-<job id>" for a job without a key, else
// name_component(key, true). idx is a decimal number, ext is png, jpg or webp.
//
// 1. B and F are single path components that are never "", "." or ".." and never start with
//    a dot: escape() turns '/' and leading dots into '_', and a name_component() is never
//    empty (an empty name becomes "~<hash>"). So every final path stays below D/B, and no
//    batch directory is D/.imgbatch-tmp (the temporary directories). Each is at most
//    kMaxStem + 17 bytes (+ "-idx~k.ext" for F): below the 255-byte limit of file systems.
// 2. Batch directories are injective: a plain name maps to itself, and plain names are
//    distinct because batch names are; a non-plain name maps to a string containing '~',
//    which no plain name contains, ending in 64 bits of the SHA-256 of the name: two
//    distinct non-plain names share a directory only if their hashes collide.
// 3. Within a batch directory, stems are injective in the same way, over three disjoint
//    classes: key-less jobs ("job-<digits>", unique job ids), plain keys (never of the form
//    job-<digits>, never containing '~'; keys are UNIQUE in the jobs table) and hashed keys
//    (contain '~').
// 4. F determines (S, idx, ext): ext follows the last '.' (idx and ext contain none) and idx
//    is the run of digits after the last '-' before it (idx contains no '-').
// So two different (batch, job, idx) never get the same path, except for a 64-bit hash
// collision between two names that are not plain; even then nothing is lost: a rename never
// replaces an existing file (place() takes the name "<S>-<idx>~2.<ext>" instead, which no
// name above can take since it has a '~' after the last '-'), and outputs.path is UNIQUE.
//
// The same holds for names recorded by versions before this scheme (e.g. "a_b-0.png" for
// the key "a b"): place() never renames over them.
//
// With an output_name template the path is D/C1/.../Ck where C1..Ck-1 are the template's
// directory components rendered and Ck = P + sep + job + "-" + idx + "." + ext: P is the
// rest of the last component rendered (without a trailing "{job}-{index}" and the '-' before
// it, which the template may write itself), cut to kMaxStem bytes, sep is "-" when P is not
// empty. Every component goes through escape() (no '/', no leading dot: nothing leaves D,
// nothing lands in D/.imgbatch-tmp) and is never empty. Ck determines (job, idx): ext
// follows the last '.', idx is the digits after the last '-' before it, job the digits
// between the '-' before those and that '-' (job and idx are decimal numbers: no '-', no
// '.'). Job ids are unique, so two different (job, idx) never share Ck, whatever the
// directories and P are. The "~k" names place() falls back to end in "-<idx>~<k>.<ext>",
// which no rendered name does (the template may not contain '~'; tokens are digits there).

namespace {

// s cut to at most max bytes, never inside a UTF-8 sequence (s is valid UTF-8).
std::string cut_at_char(std::string s, std::size_t max) {
    if (s.size() <= max) return s;
    while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
    s.resize(max);
    return s;
}

bool is_job_name(std::string_view s) {
    if (!s.starts_with("job-") || s.size() == 4) return false;
    for (char c : s.substr(4))
        if (c < '0' || c > '9') return false;
    return true;
}

}  // namespace

std::string OutputWriter::escape(std::string_view name) {
    std::string out;
    out.reserve(name.size());
    bool leading = true;
    std::size_t i = 0;
    while (i < name.size()) {
        std::size_t len = jobs::utf8_sequence_at(name, i);
        if (len == 0) {  // one invalid byte
            out.push_back('_');
            ++i;
            leading = false;
            continue;
        }
        auto c = static_cast<unsigned char>(name[i]);
        bool replace = false;
        if (len == 1) {
            replace = c < 0x20 || c == 0x7F || c == '/' || (leading && c == '.');
            leading = leading && c == '.';
        } else {
            // C1 controls U+0080..U+009F are encoded C2 80..C2 9F.
            replace = c == 0xC2 && static_cast<unsigned char>(name[i + 1]) < 0xA0;
            leading = false;
        }
        if (replace)
            out.push_back('_');
        else
            out.append(name.substr(i, len));
        i += len;
    }
    return out;
}

std::string OutputWriter::name_component(std::string_view name, bool reserve_job_names) {
    std::string esc = escape(name);
    bool plain = !name.empty() && esc == name && name.find('~') == std::string_view::npos &&
                 name.size() <= kMaxStem && !(reserve_job_names && is_job_name(name));
    if (plain) return esc;
    // Cut at a character boundary (esc is valid UTF-8: never inside a sequence).
    std::size_t keep = kMaxStem - 17;
    if (esc.size() > keep) {
        while (keep > 0 && (static_cast<unsigned char>(esc[keep]) & 0xC0) == 0x80) --keep;
        esc.resize(keep);
    }
    return esc + "~" + sha256_hex(name).substr(0, 16);
}

std::string OutputWriter::tag_for(std::string_view owner) {
    return sha256_hex(owner).substr(0, 16);
}

std::string OutputWriter::final_path(const jobs::ClaimedRequest& req, int idx,
                                     std::string_view ext) const {
    return final_path(
        NameFields{req.batch, req.key, req.model, req.prompt, req.job_id, idx, req.created_at},
        ext);
}

std::string OutputWriter::final_path(std::string_view batch, std::string_view key,
                                     std::int64_t job_id, int idx, std::string_view ext) const {
    return final_path(NameFields{batch, key, {}, {}, job_id, idx, 0}, ext);
}

std::string OutputWriter::prompt_slug(std::string_view prompt) {
    std::string out;
    bool dash = false;
    for (char ch : prompt) {
        auto c = static_cast<unsigned char>(ch);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) {
            if (dash && !out.empty()) out += '-';
            if (out.size() >= 60) break;
            out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            dash = false;
        } else {
            dash = true;
        }
    }
    while (!out.empty() && out.back() == '-') out.pop_back();
    return out.empty() ? "prompt" : out;
}

std::string OutputWriter::templated_path(const NameFields& f, std::string_view ext) const {
    const auto& t = options_.name_template;
    auto token = [&](const std::string& name) -> std::string {
        if (name == "batch") return name_component(f.batch, false);
        if (name == "key")
            return f.key.empty() ? "job-" + std::to_string(f.job_id) : name_component(f.key, true);
        if (name == "job") return std::to_string(f.job_id);
        if (name == "index") return std::to_string(f.idx);
        if (name == "model") return name_component(f.model, false);
        if (name == "prompt_slug") return prompt_slug(f.prompt);
        // date: the job's enqueue day, so that every attempt of a job names the same file.
        std::time_t t = static_cast<std::time_t>(f.created_at);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char buf[16];
        std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
        return buf;
    };
    auto render = [&](const std::vector<NameTemplate::Part>& parts, std::size_t count) {
        std::string s;
        for (std::size_t i = 0; i < count; ++i)
            s += parts[i].token ? token(parts[i].text) : parts[i].text;
        return s;
    };
    std::string path = output_dir_;
    for (std::size_t c = 0; c + 1 < t.components.size(); ++c) {
        std::string comp = escape(render(t.components[c], t.components[c].size()));
        if (comp.size() > kMaxStem) comp = cut_at_char(comp, kMaxStem);
        path += "/" + (comp.empty() ? std::string("_") : comp);
    }
    const auto& last = t.components.back();
    std::string prefix = render(last, t.ends_with_job_index ? last.size() - 3 : last.size());
    if (t.ends_with_job_index && !prefix.empty()) prefix.pop_back();  // the '-' before {job}
    prefix = cut_at_char(escape(prefix), kMaxStem);
    if (!prefix.empty()) prefix += '-';
    return path + "/" + prefix + std::to_string(f.job_id) + "-" + std::to_string(f.idx) + "." +
           std::string(ext);
}

std::string OutputWriter::final_path(const NameFields& f, std::string_view ext) const {
    if (!options_.name_template.empty()) return templated_path(f, ext);
    std::string_view batch = f.batch, key = f.key;
    std::int64_t job_id = f.job_id;
    int idx = f.idx;
    std::string stem = key.empty() ? "job-" + std::to_string(job_id) : name_component(key, true);
    return output_dir_ + "/" + name_component(batch, false) + "/" + stem + "-" +
           std::to_string(idx) + "." + std::string(ext);
}

std::string OutputWriter::temp_path(std::int64_t request_id, int attempt_no, int idx) const {
    return owner_dir_ + "/" + std::to_string(request_id % output_files::kTmpShards) + "/" +
           std::to_string(request_id) + "-" + std::to_string(attempt_no) + "-" +
           std::to_string(idx) + ".tmp";
}

}  // namespace imgbatch::daemon
