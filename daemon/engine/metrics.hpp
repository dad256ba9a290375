#pragma once
// Prometheus text exposition on metrics_listen: GET /metrics. The series and their labels
// are listed in README.md ("Metrics"); every series of a configured provider, known state,
// outcome and error class is there from the start, at zero.
#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "daemon/engine/dispatcher.hpp"

namespace imgbatch::daemon {

std::string render_metrics(const EngineShared& shared);

// A label value in the exposition format: \\ \" and \n escaped (without the quotes).
std::string metric_label_value(std::string_view v);

// A listening socket for metrics_listen ("host:port", "[v6]:port"), opened at start-up so
// that an address that cannot be bound stops the daemon before it does anything: throws
// ConfigError naming the address. Closed by the destructor unless taken by serve_metrics.
class MetricsSocket {
  public:
    explicit MetricsSocket(const std::string& listen);
    ~MetricsSocket();
    MetricsSocket(const MetricsSocket&) = delete;
    MetricsSocket& operator=(const MetricsSocket&) = delete;
    const std::string& address() const { return listen_; }
    int release();  // the descriptor; the caller closes it

  private:
    std::string listen_;
    int fd_ = -1;
    bool v6_ = false;
    friend boost::asio::awaitable<void> serve_metrics(EngineShared*, MetricsSocket*);
};

// Serves GET /metrics on the socket until the io_context stops.
boost::asio::awaitable<void> serve_metrics(EngineShared* shared, MetricsSocket* socket);

}  // namespace imgbatch::daemon
