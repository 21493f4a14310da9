# cpack -G DEB (scripts/package.sh): peftcpp_<version>_<arch>.deb holding what cmake --install
# installs under /usr, with Depends computed from the binaries by dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME peftcpp)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "read, write, validate and merge Hugging Face PEFT adapters (CLI, C++ and C library)")
set(CPACK_PACKAGE_DESCRIPTION
  "peftcpp reads, writes and applies Hugging Face PEFT adapters exactly as Python PEFT 0.18 does: \
the peftcpp command (inspect, validate, convert, diff, extract, merge, unmerge), the C++20 \
library libpeftcpp with its C API (peftcpp.h), a CMake package and a pkg-config file.")
set(CPACK_PACKAGE_CONTACT "peftcpp maintainers <peftcpp@invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
if(BUILD_SHARED_LIBS)
  # bin/peftcpp needs the libpeftcpp.so.N of this package: dpkg-shlibdeps looks it up here.
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR})
  set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
endif()
# Merging loads BLAS, LAPACKE and FFTW3, downloading libcurl and libcrypto, at run time
# (dlopen), which dpkg-shlibdeps cannot see: they are named here, and the computed dependencies
# are added to them.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libopenblas0 | libopenblas0-pthread, liblapacke, libfftw3-double3, libcurl4, libssl3")
# Building against the headers and the library needs the -dev packages (nlohmann_json is used
# by the C++ headers; a static libpeftcpp.a needs the others at link time).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "nlohmann-json3-dev, libfmt-dev, libpcre2-dev, libdeflate-dev, pkg-config")
include(CPack)
