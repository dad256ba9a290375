#pragma once
// systemd notifications (sd_notify). No-ops when not started by systemd ($NOTIFY_SOCKET unset).
#include <string_view>

namespace imgbatch::daemon {

void notify_ready();
void notify_stopping();
void notify_reloading();
// STATUS= line shown by `systemctl status`.
void notify_status(std::string_view status);

}  // namespace imgbatch::daemon
