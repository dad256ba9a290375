// Reading .csv job files (RFC 4180): a header row naming the columns, one job per record.
#include <boost/json/parse.hpp>
#include <charconv>
#include <optional>
#include <set>

#include "jobs/catalog.hpp"
#include "jobs/job_line.hpp"
#include "jobs/job_readers.hpp"
#include "jobs/text.hpp"

namespace imgbatch::jobs {
namespace {

struct Cell {
    std::string text;
    bool quoted = false;
};

struct Record {
    int line = 0;  // where the record starts
    std::vector<Cell> cells;
    std::string error;  // set: the record is malformed (the reader skipped to the line's end)
};

// Splits content into records. Quoted fields may hold commas, "" and newlines.
class CsvTokenizer {
  public:
    // content: the input from a record's start, which is on line first_line.
    explicit CsvTokenizer(std::string_view content, int first_line = 1)
        : s_(content), line_(first_line) {}
    std::size_t pos() const { return pos_; }  // bytes read
    int line() const { return line_; }        // the line the next record starts on

    // False at the end of input. An unterminated quote ends the input with an error record.
    bool next(Record& r) {
        if (pos_ >= s_.size()) return false;
        r = Record{};
        r.line = line_;
        Cell cell;
        while (true) {
            // A quoted field may have blanks before its opening quote.
            auto q = s_.find_first_not_of(" \t", pos_);
            if (q != std::string_view::npos && s_[q] == '"') {
                pos_ = q;
                const int opened = line_;
                cell.quoted = true;
                if (!read_quoted(cell.text)) {
                    r.line = opened;
                    r.error =
                        "unterminated quoted field (opened on line " + std::to_string(opened) + ")";
                    pos_ = s_.size();
                    return true;
                }
                // Only blanks may follow a closing quote before the separator or the line end
                // (LF or CRLF; a lone CR is text, which the unquoted reading below would drop).
                while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
                if (!at_separator()) {
                    r.error = "column " + std::to_string(r.cells.size() + 1) +
                              ": text after a closing quote (write \"\" for a quote inside a "
                              "quoted field)";
                    skip_line();
                    return true;
                }
            }
            // Unquoted text up to the separator or the end of the line.
            auto stop = s_.find_first_of(",\n", pos_);
            if (stop == std::string_view::npos) stop = s_.size();
            auto text = s_.substr(pos_, stop - pos_);
            const bool line_end = stop == s_.size() || s_[stop] == '\n';
            if (line_end && !text.empty() && text.back() == '\r') text.remove_suffix(1);  // CRLF
            if (!cell.quoted) cell.text.assign(text);
            pos_ = stop;
            r.cells.push_back(std::move(cell));
            cell = Cell{};
            if (pos_ >= s_.size()) return true;
            const char sep = s_[pos_++];
            if (sep == '\n') {
                ++line_;
                return true;
            }
        }
    }

  private:
    // At a ',', a line end ("\n", "\r\n", a "\r" that ends the input) or the end of input.
    bool at_separator() const {
        if (pos_ >= s_.size() || s_[pos_] == ',' || s_[pos_] == '\n') return true;
        return s_[pos_] == '\r' && (pos_ + 1 == s_.size() || s_[pos_ + 1] == '\n');
    }
    // At an opening quote: reads to the closing quote. False if there is none.
    bool read_quoted(std::string& out) {
        ++pos_;
        while (true) {
            auto q = s_.find('"', pos_);
            if (q == std::string_view::npos) return false;
            auto chunk = s_.substr(pos_, q - pos_);
            for (char c : chunk) line_ += c == '\n';
            out.append(chunk);
            pos_ = q + 1;
            if (pos_ < s_.size() && s_[pos_] == '"') {
                out += '"';
                ++pos_;
                continue;
            }
            return true;
        }
    }
    void skip_line() {
        auto nl = s_.find('\n', pos_);
        pos_ = nl == std::string_view::npos ? s_.size() : nl + 1;
        ++line_;
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    int line_ = 1;
};

// The records of a streamed input. The tokenizer reads the input's window; a record that
// reaches the window's end may go on in input not read yet, so the window grows and the
// record is read again from its start.
class CsvRecords {
  public:
    explicit CsvRecords(Input& in) : in_(in) {}

    bool next(Record& r) {
        while (!done_) {
            CsvTokenizer tok(in_.window(), line_);
            const bool got = tok.next(r);
            if (!in_.at_end() && tok.pos() >= in_.window().size()) {
                if (in_.more() || in_.at_end()) continue;
                // Over the limit: only an unterminated quote makes a record that long.
                r = Record{};
                r.line = line_;
                r.error = too_long_message("record") + " (an unterminated quoted field?)";
                done_ = true;
                return true;
            }
            in_.consume(tok.pos());
            line_ = tok.line();
            return got;
        }
        return false;
    }

  private:
    Input& in_;
    int line_ = 1;
    bool done_ = false;
};

constexpr std::string_view kParamsPrefix = "params.";
constexpr std::string_view kMetadataPrefix = "metadata.";

bool is_int_field(std::string_view f) {
    return f == "n" || f == "priority" || f == "output_compression";
}

// Checks the header; returns an error for the whole file, or empty.
std::string check_header(const std::vector<std::string>& cols) {
    const auto& fields = job_fields();
    std::vector<std::string> unknown;
    std::set<std::string_view> seen;
    for (const auto& c : cols) {
        if (!seen.insert(c).second) return "column '" + c + "' appears twice";
        if (c.starts_with(kParamsPrefix) && c.size() > kParamsPrefix.size()) {
            auto p = std::string_view(c).substr(kParamsPrefix.size());
            if (std::find(fields.begin(), fields.end(), p) != fields.end())
                return "column '" + c + "': use the column '" + std::string(p) + "'";
            continue;
        }
        if (c.starts_with(kMetadataPrefix) && c.size() > kMetadataPrefix.size()) continue;
        if (std::find(fields.begin(), fields.end(), c) == fields.end())
            unknown.push_back("'" + c + "'");
    }
    if (!unknown.empty())
        return std::string(unknown.size() == 1 ? "unknown column " : "unknown columns ") +
               join(unknown) + " (known: " + join(fields) + ", params.NAME, metadata.NAME)";
    if (!seen.contains("prompt")) return "no 'prompt' column (header: " + join(cols) + ")";
    return {};
}

// One record to a job, or an error message.
std::string read_record(const std::vector<std::string>& cols, const Record& r, JobDraft& d) {
    for (std::size_t i = 0; i < r.cells.size(); ++i) {
        const Cell& cell = r.cells[i];
        // Unquoted cells are trimmed (spaces after commas); quoted ones are taken as written.
        std::string_view text = cell.quoted ? std::string_view(cell.text) : trim(cell.text);
        if (text.empty()) continue;  // not given
        if (!is_clean_utf8(text)) return std::string(kNotUtf8);
        const std::string& col = cols[i];
        const std::string where = col + "' (column " + std::to_string(i + 1);
        const bool in_params = col.starts_with(kParamsPrefix);
        if (in_params || col.starts_with(kMetadataPrefix)) {
            auto& target = in_params ? d.spec.params : d.spec.metadata;
            auto key = std::string_view(col).substr(col.find('.') + 1);
            if (target.contains(key)) return "field '" + col + "': given twice";
            target[key] = text;
        } else if (is_int_field(col)) {
            int x = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
            if (ec != std::errc{} || p != text.data() + text.size())
                return "field '" + where + "): must be an integer, got \"" + std::string(text) +
                       "\"";
            set_job_field(d, col, boost::json::value(x));
        } else if (col == "params" || col == "metadata") {
            boost::system::error_code ec;
            auto v = boost::json::parse(text, ec);
            if (ec || !v.is_object())
                return "field '" + where + "): must be a JSON object, got " + std::string(text);
            if (auto err = set_job_field(d, col, v); !err.empty()) return err;
        } else {
            if (auto err = set_job_field(d, col, boost::json::value(text)); !err.empty())
                return err;
        }
    }
    return {};
}

// A record of an `imgbatch export --format csv` file as the JSON row export writes: params
// and metadata parsed, numbers as numbers; the per-parameter columns are left out (params
// holds them all).
std::string export_record(const std::vector<std::string>& cols, const Record& r,
                          boost::json::object& row) {
    for (std::size_t i = 0; i < r.cells.size(); ++i) {
        std::string_view text = r.cells[i].text;
        const std::string& col = cols[i];
        if (text.empty() || is_generation_field(col)) continue;
        if (!is_clean_utf8(text)) return std::string(kNotUtf8);
        if (col == "params" || col == "metadata") {
            boost::system::error_code ec;
            auto v = boost::json::parse(text, ec);
            if (ec || !v.is_object())
                return "field '" + col + "': must be a JSON object, got " + std::string(text);
            row[col] = std::move(v);
        } else if (col == "n" || col == "priority" || col == "id" || col == "job" || col == "idx") {
            std::int64_t x = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
            if (ec != std::errc{} || p != text.data() + text.size())
                return "field '" + col + "': must be an integer, got \"" + std::string(text) + "\"";
            row[col] = x;
        } else {
            row[col] = text;
        }
    }
    return {};
}

bool all_empty(const Record& r) {
    for (const auto& c : r.cells)
        if (!(c.quoted ? c.text.empty() : trim(c.text).empty())) return false;
    return true;
}

}  // namespace

void read_csv(Input& in, ReadContext& ctx) {
    CsvRecords tok(in);
    Record r;
    std::vector<std::string> cols;
    // The header: the first record that is not blank.
    while (tok.next(r)) {
        if (!r.error.empty()) return ctx.error(r.line, r.error);
        if (all_empty(r)) continue;
        for (const auto& c : r.cells) {
            if (!is_clean_utf8(c.text)) return ctx.error(r.line, std::string(kNotUtf8));
            cols.emplace_back(trim(c.text));
        }
        break;
    }
    if (cols.empty()) return;  // empty file
    auto has = [&](std::string_view c) {
        return std::find(cols.begin(), cols.end(), c) != cols.end();
    };
    const bool exported = has("state") && (has("id") || has("job"));
    if (!exported)
        if (auto err = check_header(cols); !err.empty()) return ctx.error(r.line, err);

    while (tok.next(r)) {
        if (!r.error.empty()) {
            ctx.error(r.line, r.error);
            continue;
        }
        if (all_empty(r)) continue;  // blank lines, and rows of empty cells (",,,")
        if (r.cells.size() > cols.size()) {
            ctx.error(r.line, std::to_string(r.cells.size()) + " fields but the header has " +
                                  std::to_string(cols.size()) +
                                  " columns (quote a field that contains a comma)");
            continue;
        }
        // Fewer cells than columns: the missing trailing cells are not given.
        JobDraft d;
        std::string err;
        if (exported) {
            boost::json::object row;
            err = export_record(cols, r, row);
            if (err.empty()) err = read_export_row(row, d, ctx.defaults);
        } else {
            err = read_record(cols, r, d);
            if (err.empty()) err = finish_job(d, ctx.defaults);
        }
        if (!err.empty()) {
            ctx.error(r.line, std::move(err));
            continue;
        }
        d.spec.source = ctx.file;
        d.spec.line = r.line;
        ctx.job(std::move(d.spec));
    }
}

}  // namespace imgbatch::jobs
