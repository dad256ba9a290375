#pragma once
// A provider lane: concurrency, smooth rate limits (configured, or learned from 429s and
// x-ratelimit-* headers), 429 holds, a circuit breaker for runs of server/network failures,
// and pauses. Pure logic: every time is passed in (Unix seconds), so the rules are
// unit-tested without a clock.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/net/http.hpp"

namespace imgbatch::daemon {

struct LaneLimits {
    int max_concurrency = 4;
    double requests_per_minute = 0;  // 0: unlimited (a rate is learned from 429s)
    double images_per_minute = 0;    // 0: unlimited
};

// What a provider's OpenAI-style x-ratelimit-*-requests headers say; each part optional.
struct RateLimitHint {
    std::optional<double> limit;      // x-ratelimit-limit-requests: requests per minute
    std::optional<double> remaining;  // x-ratelimit-remaining-requests
    std::optional<double> reset_s;    // x-ratelimit-reset-requests ("1s", "6m0s", "20ms")
    bool empty() const { return !limit && !remaining && !reset_s; }
};

// Reads the x-ratelimit-*-requests headers (case-insensitive); unreadable values are left out.
RateLimitHint rate_limit_hint(const Headers& headers);

// A Go-style duration as providers send it ("1s", "6m0s", "1.5s", "20ms", "1h2m"), or a bare
// number of seconds; nullopt when it is not one, or negative.
std::optional<double> parse_duration_s(std::string_view text);

class Lane {
  public:
    // How a lane learns a rate nobody configured (AIMD). The first 429s set it to
    // kLearnDecrease times the rate the provider accepted over the last kLearnWindowS seconds
    // (counted over at least 1 s, and as at least one request when it refused them all); after that a 429 of a request sent at the learned rate
    // multiplies it by kLearnDecrease (once per round: refusals of requests sent before the
    // last decrease do not count again), and each success adds kLearnIncreaseRpm requests
    // per minute.
    static constexpr double kLearnDecrease = 0.9;
    static constexpr double kLearnIncreaseRpm = 0.25;
    static constexpr double kLearnWindowS = 30;
    static constexpr double kMinLearnedRpm = 1;
    // A 429 without Retry-After (or retry-after-ms) holds the lane this long.
    static constexpr double kDefaultHoldS = 1;
    // The longest hold an x-ratelimit-remaining-requests of 0 causes.
    static constexpr double kMaxHintHoldS = 60;

    explicit Lane(std::string name, LaneLimits limits = {});

    const std::string& name() const { return name_; }
    const LaneLimits& limits() const { return limits_; }
    void set_limits(const LaneLimits& limits) { limits_ = limits; }

    // How many requests may be claimed at now: 0 while paused (a probe due lets one through),
    // held or full; 1 while a rate (configured or learned) applies (starts are spaced one at
    // a time); else the free concurrency, at most max_batch.
    int claimable(double now, int max_batch = 64) const;
    // When claimable() may next become > 0 for a reason of time (rate spacing, hold, probe);
    // now when it already is; 0 when only a finishing request can open a slot (full, or a
    // paused lane without a probe time).
    double next_start_at(double now) const;

    // A request of `images` images started at now.
    void on_start(double now, int images);
    // A request ended (whatever the outcome).
    void on_finish();
    // A request succeeded: the rate factor recovers by x1.05 up to 1.0, a learned rate grows
    // by kLearnIncreaseRpm (while the lane uses it), the circuit breaker closes and the
    // concurrency it had cut ramps back up (x2 per success).
    void on_success(double now);
    // A 429 (or 503 with Retry-After) for a request started at started_at: the whole lane
    // holds for hold_s (Retry-After; kDefaultHoldS when the provider said nothing). With a
    // configured rate, its factor drops by x0.75 (not below 0.1); without one, the lane
    // learns a rate (see kLearnDecrease).
    void on_rate_limited(double now, std::optional<double> hold_s, double started_at);
    // What the provider's x-ratelimit headers said at now: their limit is where a learned
    // rate starts and its ceiling (a configured rate wins); no request left holds the lane
    // until the next one is back.
    void on_hint(double now, const RateLimitHint& hint);
    // A server, network or timeout failure of request_id at now (the circuit breaker): the
    // lane holds for step_s * 2^(run - 1), at most max_s, where run counts the failures since
    // the provider last answered; from kBreakerTrip failures on (or at once while the
    // concurrency ramps back up after a trip) it also goes down to one request at a time
    // (half-open) until a success. Returns whether the failure is blamed on
    // the provider rather than on the request: when this run of failures (or one that ended
    // less than kTroubleWindowS ago) involved more than one request.
    bool on_failure(double now, std::int64_t request_id, double step_s, double max_s);
    static constexpr int kBreakerTrip = 3;
    // The provider answered something else (an error of the request, not of the provider):
    // the run of failures ends.
    void on_answered();
    static constexpr double kTroubleWindowS = 60;

    // Stops claiming until until (local errors: disk full, output not writable).
    void hold_until(double until);

    // Paused by auth/quota errors (probe_at > 0: one request is let through after it) or by
    // the user (probe_at 0: until resumed).
    void pause(std::string reason, double probe_at);
    void unpause();
    bool paused() const { return paused_; }
    const std::string& pause_reason() const { return pause_reason_; }
    double probe_at() const { return probe_at_; }
    // Whether the request that started last was a probe of a paused lane; its outcome
    // decides: resolve_probe(true) unpauses, resolve_probe(false) is followed by pause().
    bool probing() const { return probing_; }
    void resolve_probe(bool ok);

    int in_flight() const { return in_flight_; }
    double rate_factor() const { return factor_; }
    double held_until() const { return hold_until_; }
    // The rate learned from 429s or x-ratelimit headers (requests per minute); 0: none.
    double learned_rpm() const { return learned_rpm_; }
    // Failures since the provider last answered, and the concurrency the breaker allows
    // (0: no cut).
    int failure_run() const { return run_; }
    int breaker_cap() const { return cap_; }

  private:
    double request_interval() const;  // seconds between request starts, 0: unlimited
    double image_interval() const;    // seconds per image token, 0: unlimited
    bool rate_limited() const;
    void forget_before(double t);
    double start_rate_rpm(double now) const;  // starts per minute over the window
    void hold(double until);

    std::string name_;
    LaneLimits limits_;
    int in_flight_ = 0;
    double factor_ = 1.0;
    double next_request_at_ = 0;  // earliest start allowed by the request rate
    double next_image_at_ = 0;    // earliest start allowed by images_per_minute
    double hold_until_ = 0;
    bool paused_ = false;
    bool probing_ = false;
    std::string pause_reason_;
    double probe_at_ = 0;

    // Learning (no configured requests_per_minute).
    double learned_rpm_ = 0;
    double hinted_rpm_ = 0;       // from x-ratelimit-limit-requests; a ceiling for learning
    std::deque<double> starts_;   // start times within the window
    std::deque<double> refused_;  // start times of refused requests within the window
    double last_decrease_at_ = 0;
    bool estimating_ = false;  // the learned rate is still an estimate from the first burst

    // Circuit breaker.
    int run_ = 0;  // consecutive server/network/timeout failures
    std::int64_t run_first_request_ = 0;
    bool run_shared_ = false;  // the run involved more than one request
    double trouble_until_ = 0;
    int cap_ = 0;  // concurrency allowed while recovering; 0: no cut
};

}  // namespace imgbatch::daemon
