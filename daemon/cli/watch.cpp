// `imgbatch status --watch`: the progress display (see progress.hpp), redrawn every interval.
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "daemon/cli/progress.hpp"

namespace imgbatch::daemon::cli {

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
    g_stop = true;
}

bool env_set(const char* name) {
    const char* v = std::getenv(name);
    return v && *v;
}

int terminal_width() {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    if (const char* c = std::getenv("COLUMNS")) {
        const int n = std::atoi(c);
        if (n > 0) return n;
    }
    return 80;
}

}  // namespace

void catch_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() {
    return g_stop;
}

bool sleep_unless_stopped(double s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
    while (!g_stop && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return !g_stop;
}

int run_watch(Context& ctx, const std::optional<std::string>& batch, double interval_s) {
    catch_stop_signals();
    const char* term = std::getenv("TERM");
    const bool dumb = term && std::strcmp(term, "dumb") == 0;
    const bool redraw = ::isatty(STDOUT_FILENO) && !dumb;
    FrameStyle style;
    style.color = redraw && !env_set("NO_COLOR");
    ProgressReader reader(ctx, batch);
    std::size_t drawn = 0;  // lines of the frame on screen
    for (;;) {
        const Snapshot s = reader.read();
        if (redraw) {
            style.width = terminal_width();
            std::string out;
            if (drawn > 0) out += "\r\x1b[" + std::to_string(drawn) + "A";
            const auto lines = render_frame(s, style);
            for (const auto& line : lines) out += "\x1b[2K" + line + "\n";
            out += "\x1b[J";  // the rest of a longer previous frame
            drawn = lines.size();
            std::cout << out << std::flush;
        } else {
            std::cout << render_lines(s) << std::flush;
        }
        if (batch && s.all_final()) return 0;
        if (!sleep_unless_stopped(interval_s)) return 0;
    }
}

}  // namespace imgbatch::daemon::cli
