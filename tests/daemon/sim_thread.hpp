#pragma once
// A SimServer on 127.0.0.1:0 with its own io_context and thread, for tests that talk to the
// simulator over loopback from the test thread.
#include <boost/asio/io_context.hpp>
#include <string>
#include <thread>

#include "daemon/sim/server.hpp"

namespace imgbatch::daemon::testing {

class SimThread {
  public:
    explicit SimThread(SimOptions options = {})
        : server_(ioc_.get_executor(), listen_any(options)) {
        server_.start();
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~SimThread() {
        server_.stop();
        thread_.join();
    }
    SimThread(const SimThread&) = delete;
    SimThread& operator=(const SimThread&) = delete;

    int port() const { return server_.port(); }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port()) + path;
    }

  private:
    static SimOptions listen_any(SimOptions o) {
        o.listen = "127.0.0.1:0";
        return o;
    }
    boost::asio::io_context ioc_{1};
    SimServer server_;
    std::thread thread_;
};

}  // namespace imgbatch::daemon::testing
