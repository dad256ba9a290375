#pragma once
// Prometheus text exposition on metrics_listen: GET /metrics.
#include <boost/asio/awaitable.hpp>
#include <string>

#include "daemon/engine/dispatcher.hpp"

namespace imgbatch::daemon {

// imgbatch_requests_in_flight{provider}, imgbatch_images_total{provider},
// imgbatch_attempts_total{provider,outcome}.
std::string render_metrics(const EngineShared& shared);

// Serves GET /metrics on listen ("host:port") until the io_context stops. Throws
// std::runtime_error when the address cannot be bound.
boost::asio::awaitable<void> serve_metrics(EngineShared* shared, std::string listen);

}  // namespace imgbatch::daemon
