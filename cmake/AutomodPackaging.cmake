# Installation layout and the CPack DEB package (issue 6 §9): the binaries, the bundled default
# model (when trained), sample photos, the .desktop file, the icon and the AppStream metadata.
include(GNUInstallDirs)

set(AUTOMOD_SHARE_DIR ${CMAKE_INSTALL_DATADIR}/automod-studio)
if(EXISTS ${PROJECT_SOURCE_DIR}/models/default.amod)
  install(FILES ${PROJECT_SOURCE_DIR}/models/default.amod DESTINATION ${AUTOMOD_SHARE_DIR}/models)
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/resources/samples)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/resources/samples/ DESTINATION ${AUTOMOD_SHARE_DIR}/samples)
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/resources/presets)
  # Where training/schedule.cpp's presetDirs() looks next to an installed binary.
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/resources/presets/ DESTINATION ${CMAKE_INSTALL_DATADIR}/automod/presets)
endif()
if(AUTOMOD_BUILD_GUI)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/automod-studio.desktop DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
  install(FILES ${PROJECT_SOURCE_DIR}/resources/icons/automod-studio.svg
          DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/io.github.automodulator.Studio.metainfo.xml
          DESTINATION ${CMAKE_INSTALL_DATADIR}/metainfo)
endif()

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "automod-studio")
set(CPACK_PACKAGE_VENDOR "Automodulator Studio")
set(CPACK_PACKAGE_CONTACT "Automodulator Studio maintainers <maintainers@automodulator.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Mix, sample and edit faces with a deep automodulator")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "graphics")
# Debian's own libraries (libtorch, Qt 6, OpenCV, dlib): let dpkg-shlibdeps name them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(AUTOMOD_BUILD_GUI)
  # Loaded as plugins, so dpkg-shlibdeps cannot see them: the SVG icons and the display platforms.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libqt6svg6, qt6-qpa-plugins")
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libdlib-data")
include(CPack)
