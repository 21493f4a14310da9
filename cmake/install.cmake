# cmake --install: headers, libpeftcpp, the peftcpp CLI, a CMake package (peftcpp::peftcpp),
# peftcpp.pc and the documentation. docs/library.md describes the installed layout.
include(CMakePackageConfigHelpers)

set(PEFTCPP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/peftcpp)

install(TARGETS peftcpp_lib EXPORT peftcppTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT lib NAMELINK_COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS peftcpp RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ ${PROJECT_BINARY_DIR}/include/
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev
  FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")

install(EXPORT peftcppTargets NAMESPACE peftcpp:: DESTINATION ${PEFTCPP_CMAKE_DIR} COMPONENT dev)
# The private dependencies a static libpeftcpp.a needs at the consumer's link.
if(BUILD_SHARED_LIBS)
  set(PEFTCPP_STATIC 0)
else()
  set(PEFTCPP_STATIC 1)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/peftcppConfig.cmake.in
  ${PROJECT_BINARY_DIR}/peftcppConfig.cmake INSTALL_DESTINATION ${PEFTCPP_CMAKE_DIR})
# 0.x: a minor release may change the API, so only the same MAJOR.MINOR satisfies a request.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/peftcppConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/peftcppConfig.cmake ${PROJECT_BINARY_DIR}/peftcppConfigVersion.cmake
  DESTINATION ${PEFTCPP_CMAKE_DIR} COMPONENT dev)

# pkg-config: the C and C++ flags; --static adds what libpeftcpp.a needs. The prefix is the
# one of the install (cmake --install --prefix P), so the file is finished at install time.
set(PEFTCPP_PC_PREFIX "@CMAKE_INSTALL_PREFIX@")
configure_file(${PROJECT_SOURCE_DIR}/cmake/peftcpp.pc.in ${PROJECT_BINARY_DIR}/peftcpp.pc.in @ONLY)
install(CODE "configure_file(\"${PROJECT_BINARY_DIR}/peftcpp.pc.in\" \"${PROJECT_BINARY_DIR}/peftcpp.pc\" @ONLY)"
  COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/peftcpp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT dev)

# Documentation (there is no license file in the repository yet).
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs COMPONENT doc
  FILES_MATCHING PATTERN "*.md")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/tf_llama_lora
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT doc)
foreach(license LICENSE LICENSE.md LICENSE.txt COPYING)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${license})
    install(FILES ${PROJECT_SOURCE_DIR}/${license} DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
  endif()
endforeach()
