// `imgbatch sim`: the simulator as a program, until SIGINT or SIGTERM.
#include "daemon/sim/sim.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "daemon/sim/server.hpp"

namespace imgbatch::daemon {
namespace {

// Written whole under a temporary name, then renamed: a reader never sees half a number.
bool write_port_file(const std::string& path, unsigned short port) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << port << '\n';
        if (!f.flush()) return false;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    return !ec;
}

}  // namespace

int run_sim(const SimOptions& options) {
    boost::asio::io_context ioc(1);
    std::unique_ptr<SimServer> server;
    try {
        server = std::make_unique<SimServer>(ioc.get_executor(), options);
    } catch (const std::invalid_argument& e) {
        spdlog::error("sim: {}", e.what());
        return 2;
    } catch (const std::exception& e) {
        spdlog::error("sim: {}", e.what());
        return 1;
    }
    boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
    SimServer* s = server.get();
    signals.async_wait([s](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        spdlog::info("sim stopping on signal {}", signal);
        s->stop();
    });
    server->start();
    if (!options.port_file.empty() && !write_port_file(options.port_file, server->port())) {
        spdlog::error("sim: cannot write port file {}", options.port_file);
        return 1;
    }
    spdlog::info(
        "sim listening on port={} listen={} latency_ms={} jitter_ms={} rpm={} image_size={} "
        "fault_rate={} seed={} gateway_rpm={}",
        server->port(), options.listen, options.latency_ms, options.jitter_ms,
        options.requests_per_minute, options.image_size, options.fault_rate, options.seed,
        options.gateway_rpm);
    ioc.run();
    return 0;
}

}  // namespace imgbatch::daemon
