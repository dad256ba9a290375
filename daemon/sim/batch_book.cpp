#include "daemon/sim/batch_book.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

namespace imgbatch::daemon {

namespace sim_batch {

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

Phase phase(std::int64_t created_ms, int batch_ms, bool cancel) {
    const std::int64_t elapsed = steady_ms() - created_ms;
    const std::int64_t total_ms = std::max(0, batch_ms);
    if (cancel || elapsed >= total_ms) return Phase::due;
    return elapsed >= total_ms / 4 ? Phase::running : Phase::queued;
}

std::size_t lines_to_run(std::size_t n, bool cancel, std::int64_t created_ms,
                         std::int64_t cancel_ms, int batch_ms) {
    const std::int64_t total_ms = std::max(0, batch_ms);
    if (!cancel || total_ms <= 0) return n;
    return std::min<std::size_t>(
        n, n * static_cast<std::size_t>(std::max<std::int64_t>(0, cancel_ms - created_ms)) /
               static_cast<std::size_t>(total_ms));
}

std::vector<std::string_view> jsonl_lines(std::string_view data) {
    std::vector<std::string_view> lines;
    for (std::size_t pos = 0; pos < data.size();) {
        auto nl = data.find('\n', pos);
        if (nl == std::string_view::npos) nl = data.size();
        if (nl > pos) lines.push_back(data.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return lines;
}

bool has_token(std::string_view text, std::string_view token) {
    auto boundary = [](char c) { return std::isspace(static_cast<unsigned char>(c)) || c == '"'; };
    std::size_t at = 0;
    while ((at = text.find(token, at)) != std::string_view::npos) {
        const std::size_t end = at + token.size();
        const bool start_ok = at == 0 || boundary(text[at - 1]);
        const bool end_ok = end == text.size() || boundary(text[end]);
        if (start_ok && end_ok) return true;
        at = end;
    }
    return false;
}

SimAnswer held() {
    SimAnswer a;
    a.action = SimAnswer::Action::hold;
    return a;
}

SimAnswer answer(int status, std::string_view content_type, std::string body) {
    SimAnswer a;
    a.status = status;
    a.headers.emplace_back("Content-Type", content_type);
    a.body = std::move(body);
    return a;
}

SimAnswer file_answer(std::string bytes) {
    return answer(200, "application/octet-stream", std::move(bytes));
}

bool BatchBook::create(bool createlost, const std::string& key) {
    ++created;
    const bool lose = createlost && lost_creates.insert(key).second;
    if (lose) ++lost;
    return lose;
}

boost::json::object BatchBook::stats() const {
    return {{"created", created}, {"lines", lines}, {"creates_lost", lost}};
}

}  // namespace sim_batch

SimAnswer SimState::batch_line_call(SimApi api, const SimRequest& request) {
    batch_line_ = true;
    SimAnswer a = api_call(api, request, request.target);
    batch_line_ = false;
    return a;
}

}  // namespace imgbatch::daemon
