#pragma once
// One attempt of one request: build -> send -> parse -> download -> check -> stage ->
// Completion. check_images and make_completion are pure (tested without a socket).
#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/engine/dispatcher.hpp"
#include "daemon/engine/output_writer.hpp"
#include "daemon/providers/provider.hpp"
#include "jobs/retry_policy.hpp"
#include "jobs/store.hpp"

namespace imgbatch::daemon {

// What an answer amounts to once its image bytes are known.
struct CheckedImages {
    std::vector<StagedImage> images;   // valid images, at most `ask`
    std::optional<jobs::Error> error;  // the attempt's error, partial included
};

// Keeps the images whose bytes sniff as PNG/JPEG/WebP (at most ask). The error: the parse
// error if any; else bad_response when some bytes were bad ("image i: not a PNG, JPEG or
// WebP"); else moderation when the provider filtered every image; else partial ("got 2 of
// 4 images") when fewer than ask; none when all ask images are there.
// download_error: a failed image download (class network or timeout), applied like a parse
// error.
// http_status: the answer's status, recorded with errors found here.
CheckedImages check_images(ParsedResponse parsed, int ask, int http_status = 200,
                           const std::optional<jobs::Error>& download_error = std::nullopt);

// The completion of an attempt and what the lane must do about it.
struct AttemptResult {
    jobs::Completion completion;
    jobs::Action action = jobs::Action::retry;  // meaningful when completion.error is set
    double delay_s = 0;
    std::string outcome;  // ok, partial, error (attempts.outcome)
    // For a server or network error: the decision to use instead when the lane blames the
    // failure on the provider (a run of failures tripped its circuit breaker).
    std::optional<jobs::Decision> if_provider_failure;
};

// Appended to the message of a timeout or network failure that may have been billed
// (jobs::may_be_billed).
inline constexpr std::string_view kMayBeBilled =
    " (the provider may have generated and billed this call)";

// Decides with jobs::decide: no error -> done; retry/fail/block as decided; pause_provider and
// pause_local -> retry without counting anything (not_before now for a provider pause, now +
// delay for a local pause). outputs are kept in every case. A timeout that may have been
// billed gets kMayBeBilled appended to its message.
AttemptResult make_completion(const jobs::ClaimedRequest& req, const std::string& owner,
                              double started_at, double finished_at,
                              std::vector<jobs::OutputRecord> outputs,
                              std::optional<jobs::Error> error, std::string usage_json,
                              const jobs::RetryConfig& retry, double jitter01);

// Fills c's billing, usage and cost (jobs::price_completion) at the price of req's model at
// provider (its "prices", else catalog's; catalog may be null). batch: a vendor batch line.
void price_attempt(jobs::Completion& c, const jobs::Catalog* catalog,
                   const ProviderConfig& provider, const jobs::ClaimedRequest& req, bool batch);

// Sets each image's cost_usd (for its sidecar) to its share of what the call that returned
// them cost (price_attempt on the answer's usage and error).
void share_cost(std::vector<StagedImage>& images, const jobs::Catalog* catalog,
                const ProviderConfig& provider, const jobs::ClaimedRequest& req,
                const std::string& usage_json, const std::optional<jobs::Error>& error, bool batch);

// Switches r to its if_provider_failure decision (the failure does not use an attempt);
// nothing when it has none.
void blame_provider(AttemptResult& r);

// The whole attempt on the network thread; registered in shared->in_flight by the caller.
// slot: the lane slot the attempt took; released once, when the answer is in at the latest.
boost::asio::awaitable<void> run_attempt(EngineShared* shared, ProviderRuntime* provider,
                                         jobs::ClaimedRequest req, std::shared_ptr<LaneSlot> slot);

}  // namespace imgbatch::daemon
