#pragma once
// The simulator's HTTP/1.1 server: one coroutine per connection, keep-alive, on the executor it
// is given (run it on a single-threaded io_context). Tests start one on 127.0.0.1:0 and read
// port(). Beast stays in server.cpp.
#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "daemon/sim/sim.hpp"

namespace imgbatch::daemon {

class SimServer {
  public:
    // Binds options.listen at once (throws std::runtime_error when it cannot); start() accepts.
    SimServer(boost::asio::any_io_executor executor, SimOptions options);
    ~SimServer();
    SimServer(const SimServer&) = delete;
    SimServer& operator=(const SimServer&) = delete;

    unsigned short port() const;
    void start();
    // Stops accepting and closes every connection. Safe from any thread.
    void stop();
    // The /sim/stats JSON; call it on the server's executor (or when it is not running).
    std::string stats_json() const;

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace imgbatch::daemon
