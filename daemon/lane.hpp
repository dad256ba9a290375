#pragma once
// A provider lane: concurrency, smooth rate limits, 429 holds and pauses. Pure logic: every
// time is passed in (Unix seconds), so the rules are unit-tested without a clock.
#include <string>

namespace imgbatch::daemon {

struct LaneLimits {
    int max_concurrency = 4;
    double requests_per_minute = 0;  // 0: unlimited
    double images_per_minute = 0;    // 0: unlimited
};

class Lane {
  public:
    explicit Lane(std::string name, LaneLimits limits = {});

    const std::string& name() const { return name_; }
    const LaneLimits& limits() const { return limits_; }
    void set_limits(const LaneLimits& limits) { limits_ = limits; }

    // How many requests may be claimed at now: 0 while paused (a probe due lets one through),
    // held or full; 1 while a rate limit is configured (starts are spaced one at a time);
    // else the free concurrency, at most max_batch.
    int claimable(double now, int max_batch = 64) const;
    // When claimable() may next become > 0 for a reason of time (rate spacing, hold, probe);
    // now when it already is; 0 when only a finishing request can open a slot (full, or a
    // paused lane without a probe time).
    double next_start_at(double now) const;

    // A request of `images` images started at now.
    void on_start(double now, int images);
    // A request ended (whatever the outcome).
    void on_finish();
    // A request succeeded: the rate factor recovers by x1.05 up to 1.0.
    void on_success();
    // A 429 (or 503 with Retry-After): hold the whole lane until until; the effective rate
    // drops by x0.75 (not below 0.1).
    void on_rate_limited(double until);
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

  private:
    double request_interval() const;  // seconds between request starts, 0: unlimited
    double image_interval() const;    // seconds per image token, 0: unlimited
    bool rate_limited() const;

    std::string name_;
    LaneLimits limits_;
    int in_flight_ = 0;
    double factor_ = 1.0;
    double next_request_at_ = 0;  // earliest start allowed by requests_per_minute
    double next_image_at_ = 0;    // earliest start allowed by images_per_minute
    double hold_until_ = 0;
    bool paused_ = false;
    bool probing_ = false;
    std::string pause_reason_;
    double probe_at_ = 0;
};

}  // namespace imgbatch::daemon
