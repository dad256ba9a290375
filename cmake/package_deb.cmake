# CPack settings for the Debian package (README "Debian package"): `cpack -G DEB` in the build
# directory packages the files of `cmake --install --strip`, the maintainer scripts of
# packaging/debian/ (the user with systemd-sysusers, the directories with systemd-tmpfiles,
# the unit enabled and started with deb-systemd-helper/deb-systemd-invoke), the copyright and
# changelog Debian requires, and dependencies found by dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME imgbatch)
set(CPACK_PACKAGE_VENDOR "imgbatch")
set(CPACK_PACKAGE_CONTACT "imgbatch maintainers <imgbatch@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "batch image generation daemon")
set(CPACK_PACKAGE_DESCRIPTION
    "imgbatch turns a SQLite table of image prompts into image files. Its daemon\n\
calls image-generation APIs (OpenAI, Gemini, Imagen and OpenAI-compatible\n\
relays) under each provider's concurrency and rate limits, retries what is\n\
worth retrying, and writes the images and every status change back to the\n\
database.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# The package's prefix is /usr whatever the build's CMAKE_INSTALL_PREFIX: cpack installs into
# its staging directory with DESTDIR and CMAKE_INSTALL_PREFIX=/usr, and the unit is generated
# at install time with that prefix (ExecStart=/usr/bin/imgbatch, in /lib/systemd/system).
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# systemd-sysusers and systemd-tmpfiles run in postinst (deb-systemd-helper comes with the
# essential init-system-helpers).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)

# /usr/share/doc/imgbatch/copyright and changelog.gz (Debian policy 12.5, 12.7).
set(IMGBATCH_CHANGELOG_GZ ${CMAKE_BINARY_DIR}/generated/changelog.gz)
add_custom_command(
  OUTPUT ${IMGBATCH_CHANGELOG_GZ}
  COMMAND gzip -9nc ${CMAKE_SOURCE_DIR}/packaging/debian/changelog > ${IMGBATCH_CHANGELOG_GZ}
  DEPENDS ${CMAKE_SOURCE_DIR}/packaging/debian/changelog
  COMMENT "Compressing the changelog")
add_custom_target(imgbatch_changelog ALL DEPENDS ${IMGBATCH_CHANGELOG_GZ})
install(FILES ${IMGBATCH_CHANGELOG_GZ} packaging/debian/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
include(CPack)
