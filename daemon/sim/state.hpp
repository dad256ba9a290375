#pragma once
// The simulator's behaviour without sockets: routing, prompt directives, faults, rate limit,
// generated images, served files and counters. SimServer feeds it parsed requests and carries
// out the answers (respond, delay, reset, hold, truncate). Single-threaded: the server calls it
// from its one io thread.
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "daemon/net/http.hpp"
#include "daemon/sim/sim.hpp"

namespace imgbatch::daemon {

// The value of query parameter name in a request target ("/x?a=1&b=2"), or "" (not decoded).
std::string query_param(std::string_view target, std::string_view name);

struct SimRequest {
    std::string method;
    std::string target;         // origin-form or absolute-form (through a proxy)
    std::string host;           // Host header, for the URLs of served files
    std::string authorization;  // Authorization header
    std::string goog_api_key;   // x-goog-api-key header
    std::string goog_upload;    // X-Goog-Upload-Command header (Files API uploads)
    std::string body;
};

struct SimAnswer {
    enum class Action {
        respond,   // send status, headers, body
        reset,     // close the socket at once, no answer
        hold,      // answer nothing until the client closes (or a long time passes)
        truncate,  // send a Content-Length larger than the body, then close
        close,     // close the connection in order (FIN), no answer
    };
    Action action = Action::respond;
    int status = 200;
    Headers headers;  // Content-Type and the rest
    std::string body;
    int delay_ms = 0;          // wait this long before acting
    bool counted = false;      // an API request: in_flight and by_status follow it
    int images = 0;            // real PNGs in the answer (counted once it is sent)
    std::string interim;       // raw interim answers (1xx heads) sent before the answer
    bool close_after = false;  // close the connection with the answer, which says keep-alive
};

// Which API a request speaks: errors and images take that API's shape.
enum class SimApi { openai, google, chat, gemini };

// What the prompt asks of the simulator (see parse_directives).
struct SimDirectives {
    std::string fail;      // fault kind of #fail=KIND, empty when none
    int fail_count = -1;   // COUNT of #fail=KIND*COUNT; -1: every call fails
    int slow_ms = 0;       // #slow=MS
    bool url = false;      // #url
    bool datauri = false;  // #datauri

    // #chatshape: the images endpoint answers in the chat-completion shape
    bool chatshape = false;
};

// Reads #fail=KIND[*COUNT], #slow=MS, #url and #datauri tokens (separated by white space).
// Also #chatshape.
SimDirectives parse_directives(std::string_view prompt);

class SimState {
  public:
    explicit SimState(SimOptions options);

    void set_port(unsigned short port) { port_ = port; }
    void connection_opened() { ++connections_; }

    // Decides the answer to one request and counts it.
    SimAnswer handle(const SimRequest& request);
    // The answer was carried out (sent, reset or abandoned): updates in_flight and by_status.
    void finished(const SimAnswer& answer);

    std::string stats_json() const;
    void reset_counters();

  private:
    struct Call {
        SimApi api = SimApi::openai;
        std::string model;
        std::string prompt;
        int n = 1;
        bool url = false;
        bool datauri = false;
        std::string base;  // http://host:port for file URLs
        // gemini: responseModalities without "IMAGE"
        bool text_only = false;
        // images endpoint: answer in the chat-completion shape (#chatshape)
        bool chatshape = false;
    };
    // png: real PNGs; badbase64: every entry invalid; badone: the first entry invalid, the
    // others real PNGs; notimage: valid base64 of text.
    enum class Bytes { png, badbase64, badone, notimage };

    SimAnswer route(const SimRequest& request, std::string_view path);
    SimAnswer api_call(SimApi api, const SimRequest& request, std::string_view path);
    SimAnswer serve_file(std::string_view path);
    std::optional<SimAnswer> rate_limit(SimApi api);
    std::optional<SimAnswer> gateway_limit();
    void add_ratelimit_headers(SimAnswer& answer) const;
    SimAnswer fault(const Call& call, std::string_view kind);

    // Bodies in each API's shape (bodies.cpp).
    SimAnswer images(const Call& call, int good, int filtered, Bytes bytes);
    SimAnswer error(SimApi api, int status, std::string_view type, std::string_view code,
                    std::string_view message, std::string_view google_status);
    // generateContent without an image: a candidate ending with finish_reason (STOP: a text
    // part only), or (block_reason set) a blocked prompt with no candidate.
    SimAnswer gemini_no_image(const Call& call, std::string_view finish_reason,
                              std::string_view block_reason);
    // An image and its base64 text. PNGs come from a pool of kImagePool different pictures
    // made once each: make_png per request would cost more than all the HTTP work. Each image
    // sent carries its prompt in an iTXt chunk before IEND: a pool picture keeps the PNG up
    // to there (bytes, padded to a multiple of 3 bytes) and its base64, so that only the
    // short tail is encoded per image.
    struct Picture {
        std::string bytes;
        std::string base64;
    };
    static constexpr std::size_t kImagePool = 1024;
    const Picture& picture(Bytes bytes);
    // A pool picture tagged with prompt: the PNG bytes, or their base64 text.
    std::string tagged_png(const std::string& prompt);
    std::string tagged_base64(const std::string& prompt);
    std::string store_file(std::string bytes);

    SimOptions options_;
    unsigned short port_ = 0;
    std::mt19937_64 rng_;
    std::uint64_t next_id_ = 1;
    std::uint64_t next_picture_ = 0;
    std::vector<Picture> pictures_;
    Picture not_image_;

    // Directive counters: calls seen per exact prompt text.
    std::unordered_map<std::string, int> calls_by_prompt_;

    // Token bucket for requests_per_minute.
    double tokens_ = 0;
    std::chrono::steady_clock::time_point refilled_;

    // The gateway's bucket for gateway_rpm (one request, refilled at gateway_rpm / 60 a
    // second).
    double gateway_tokens_ = 1;
    std::chrono::steady_clock::time_point gateway_refilled_;

    // Served files: a bounded LRU (most recent at the front).
    std::list<std::pair<std::string, std::string>> files_;
    std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator>
        file_index_;

    // Counters of /sim/stats.
    std::uint64_t requests_ = 0;
    std::uint64_t in_flight_ = 0;
    std::uint64_t max_in_flight_ = 0;
    std::uint64_t rate_limited_ = 0;
    std::uint64_t gateway_refused_ = 0;
    std::uint64_t images_ = 0;
    std::uint64_t connections_ = 0;
    std::uint64_t files_served_ = 0;
    std::map<std::string, std::uint64_t> by_status_;
    std::map<std::string, std::uint64_t> by_path_;

    // token_uses: API calls accepted so far per token; tokens_expired_: 401s for expiry.
    std::unordered_map<std::string, int> token_calls_;
    std::uint64_t tokens_expired_ = 0;
    std::optional<SimAnswer> expired_token(SimApi api, const SimRequest& request);
    // Batch APIs (batch.cpp): OpenAI Files and Batches, Gemini batchGenerateContent and
    // batches/{id}. Each line runs through api_call as a direct call would (its #fail
    // directives included), outside the rate limit (batches have their own pool).
    struct Batches;
    std::shared_ptr<Batches> batches_;
    bool batch_line_ = false;  // api_call runs a batch line: no rate limit
    std::optional<SimAnswer> batch_api(const SimRequest& request, std::string_view path);
    void batch_stats(boost::json::object& stats) const;
    // Gemini Batch Mode and the Files API (gemini_batch.cpp).
    struct GeminiBatches;
    std::shared_ptr<GeminiBatches> gemini_batches_;
    std::optional<SimAnswer> gemini_batch_api(const SimRequest& request, std::string_view path);
    void gemini_batch_stats(boost::json::object& stats) const;
    // One line of a vendor batch through api_call (at request.target), outside the rate limit
    // (batch_book.cpp).
    SimAnswer batch_line_call(SimApi api, const SimRequest& request);
};

}  // namespace imgbatch::daemon
