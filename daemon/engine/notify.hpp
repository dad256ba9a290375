#pragma once
// systemd notifications (sd_notify). No-ops when not started by systemd ($NOTIFY_SOCKET unset).
#include <chrono>
#include <optional>
#include <string_view>

namespace imgbatch::daemon {

void notify_ready();
// The stop has begun (sent when it begins, not at exit): systemd's TimeoutStopSec runs from
// here.
void notify_stopping();
void notify_reloading();
// STATUS= line shown by `systemctl status`.
void notify_status(std::string_view status);
// EXTEND_TIMEOUT_USEC=: systemd waits at least `by` longer for the current state (here: the
// stop while calls drain) before it gives up. Sent again before `by` runs out while the
// daemon still works on it.
void notify_extend_timeout(std::chrono::microseconds by);
// WATCHDOG=1: the daemon is alive (see watchdog_interval).
void notify_watchdog();
// The unit's WatchdogSec= ($WATCHDOG_USEC, for this process when $WATCHDOG_PID is set), or
// nullopt when no watchdog is asked for: WATCHDOG=1 must then come more often than this.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace imgbatch::daemon
