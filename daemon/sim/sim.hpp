#pragma once
// `imgbatch sim`: a simulated image provider over real HTTP speaking the three API styles.
#include <cstddef>
#include <string>

namespace imgbatch::daemon {

struct SimOptions {
    std::string listen = "127.0.0.1:8089";  // ADDR:PORT; port 0 picks a free one
    int latency_ms = 0;                     // added to every answer
    int jitter_ms = 0;                      // plus uniform [0, jitter_ms)
    double requests_per_minute = 0;         // 0: unlimited; above it: 429 with Retry-After
    int image_size = 64;                    // width and height of generated PNGs
    double fault_rate = 0;                  // share of requests answered with a random fault
    unsigned seed = 1;
    std::string port_file;  // if set, the bound port is written there
    std::string api_key;    // if set, API calls without this Bearer / x-goog-api-key get 401
    std::size_t max_files = 10'000;  // served /sim/files kept (least recently used dropped)
    // With requests_per_minute: every API answer carries OpenAI's x-ratelimit-*-requests
    // headers (limit, remaining, reset).
    bool ratelimit_headers = false;
    // A gateway in front of the API like nginx's default limit_req: above this many requests
    // per minute (no burst) it answers 503 with an HTML page and no Retry-After. 0: off.
    double gateway_rpm = 0;
    // Short-lived tokens: each Bearer token (or x-goog-api-key) is accepted for this many API
    // calls, then it has expired: 401 for it from then on (and for calls without one). 0: off.
    int token_uses = 0;
    // Batch APIs (OpenAI Batch, Gemini Batch Mode): how long a batch takes from create to
    // completed (validating for the first quarter, then in_progress).
    int batch_ms = 500;
};

// Runs the simulator until SIGINT/SIGTERM. Returns the exit code.
int run_sim(const SimOptions& options);

}  // namespace imgbatch::daemon
