# Install-time part of `cmake --install` (see CMakeLists.txt): generates the unit from
# systemd/imgbatch.service.in with the prefix of this install, and installs it with the
# sysusers.d and tmpfiles.d files. Expects IMGBATCH_SOURCE_DIR, IMGBATCH_BINARY_DIR,
# IMGBATCH_BINDIR and IMGBATCH_DOCDIR (relative to the prefix). DESTDIR is honoured by
# file(INSTALL).
set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" prefix "${prefix}")
set(IMGBATCH_FULL_BINDIR "${prefix}/${IMGBATCH_BINDIR}")
set(IMGBATCH_FULL_DOCDIR "${prefix}/${IMGBATCH_DOCDIR}")
# Debian 12 keeps the packaged units in /lib/systemd/system; other prefixes use their own
# lib/ (systemd reads /usr/local/lib/systemd/system, /usr/local/lib/sysusers.d, ...).
if(prefix STREQUAL "/usr")
  set(unitdir "/lib/systemd/system")
else()
  set(unitdir "${prefix}/lib/systemd/system")
endif()
set(unit "${IMGBATCH_BINARY_DIR}/generated/imgbatch.service")
configure_file("${IMGBATCH_SOURCE_DIR}/systemd/imgbatch.service.in" "${unit}" @ONLY)
file(INSTALL DESTINATION "${unitdir}" TYPE FILE FILES "${unit}")
file(INSTALL DESTINATION "${prefix}/lib/sysusers.d" TYPE FILE
     FILES "${IMGBATCH_SOURCE_DIR}/systemd/imgbatch.sysusers" RENAME imgbatch.conf)
file(INSTALL DESTINATION "${prefix}/lib/tmpfiles.d" TYPE FILE
     FILES "${IMGBATCH_SOURCE_DIR}/systemd/imgbatch.tmpfiles" RENAME imgbatch.conf)
