# Install rules: the public headers, every static library of the engine's stack (consumers link
# them all, since bitnet_engine is static) and a package config for find_package(bitnet), which
# exports bitnet::engine. The internal headers are not installed: include/bitnet/ needs none.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BITNET_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/bitnet)
foreach(lib core kernels formats tokenizer model convert engine warnings)
  set_target_properties(bitnet_${lib} PROPERTIES EXPORT_NAME ${lib})
  add_library(bitnet::${lib} ALIAS bitnet_${lib})
endforeach()

install(TARGETS bitnet_engine bitnet_convert bitnet_model bitnet_tokenizer bitnet_formats
                bitnet_kernels bitnet_core bitnet_warnings
        EXPORT bitnet-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/bitnet DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT bitnet-targets NAMESPACE bitnet:: DESTINATION ${BITNET_INSTALL_CMAKEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/bitnet-config.cmake.in
                              ${PROJECT_BINARY_DIR}/bitnet-config.cmake
                              INSTALL_DESTINATION ${BITNET_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/bitnet-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/bitnet-config.cmake
              ${PROJECT_BINARY_DIR}/bitnet-config-version.cmake
        DESTINATION ${BITNET_INSTALL_CMAKEDIR})
