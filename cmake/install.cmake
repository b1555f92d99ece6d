# Installation (issue 5): the library, its header, a CMake package
# (find_package(cpool CONFIG) -> cpool::cpool) and cpool.pc for pkg-config.
#
# On by default, also under add_subdirectory(): a parent project that
# installs and exports its own targets needs cpool in an export set too.
option(CPOOL_INSTALL "Generate cpool's install rules" ON)
if(NOT CPOOL_INSTALL)
  return()
endif()

include(CMakePackageConfigHelpers)

set(CPOOL_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/cpool"
    CACHE STRING "Where cpoolConfig.cmake is installed, below the prefix")
set(CPOOL_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where cpool.pc is installed, below the prefix")

install(TARGETS cpool EXPORT cpoolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES "${PROJECT_SOURCE_DIR}/include/cpool.h"
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The CMake package.  cpool::cpool links Threads::Threads and PkgConfig::BSD
# by name; cpoolConfig.cmake re-creates both before loading the targets.
install(EXPORT cpoolTargets
  NAMESPACE cpool::
  FILE cpoolTargets.cmake
  DESTINATION ${CPOOL_INSTALL_CMAKEDIR})
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/cpoolConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cpoolConfig.cmake"
  INSTALL_DESTINATION ${CPOOL_INSTALL_CMAKEDIR})
# Pre-1.0 a minor version may break compatibility (include/cpool.h,
# "Versions"), so find_package(cpool 0.1) must not take a 0.2.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_cpool_compat SameMinorVersion)
else()
  set(_cpool_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/cpoolConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY ${_cpool_compat})
install(FILES
  "${PROJECT_BINARY_DIR}/cpoolConfig.cmake"
  "${PROJECT_BINARY_DIR}/cpoolConfigVersion.cmake"
  DESTINATION ${CPOOL_INSTALL_CMAKEDIR})

# cpool.pc names absolute paths, and the prefix is only known at install
# time (cmake --install --prefix overrides CMAKE_INSTALL_PREFIX), so the
# file is generated then; file(INSTALL) honours DESTDIR and the manifest.
#
# What a program linking cpool needs depends on the library's kind.  The
# static libcpool.a (the default) needs libbsd and the threads library at
# every link, so they are in Libs and Requires: `pkg-config --libs cpool`
# links, and --static adds only libbsd's own private libraries.  A shared
# libcpool.so brings them itself: Requires.private and Libs.private, used
# with --static only.
get_target_property(_cpool_type cpool TYPE)
if(_cpool_type STREQUAL "STATIC_LIBRARY")
  set(_cpool_pc_requires "Requires: libbsd")
  set(_cpool_pc_libs " -pthread")
  set(_cpool_pc_libs_private "")
else()
  set(_cpool_pc_requires "Requires.private: libbsd")
  set(_cpool_pc_libs "")
  set(_cpool_pc_libs_private "Libs.private: -pthread")
endif()
install(CODE "
  set(CPOOL_PC_REQUIRES \"${_cpool_pc_requires}\")
  set(CPOOL_PC_LIBS \"${_cpool_pc_libs}\")
  set(CPOOL_PC_LIBS_PRIVATE \"${_cpool_pc_libs_private}\")
  set(_cpool_pc_in \"${PROJECT_SOURCE_DIR}/cmake/cpool.pc.in\")
  set(_cpool_pc_out \"${PROJECT_BINARY_DIR}/pkgconfig/cpool.pc\")
  set(_cpool_pc_dest \"${CPOOL_INSTALL_PKGCONFIGDIR}\")
  set(CPOOL_PC_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(CPOOL_PC_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(CPOOL_PC_VERSION \"${PROJECT_VERSION}\")")
install(CODE [[
  set(CPOOL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  foreach(_var CPOOL_PC_LIBDIR CPOOL_PC_INCLUDEDIR)
    if(NOT IS_ABSOLUTE "${${_var}}")
      set(${_var} "\${prefix}/${${_var}}")
    endif()
  endforeach()
  if(NOT IS_ABSOLUTE "${_cpool_pc_dest}")
    set(_cpool_pc_dest "${CMAKE_INSTALL_PREFIX}/${_cpool_pc_dest}")
  endif()
  configure_file("${_cpool_pc_in}" "${_cpool_pc_out}" @ONLY)
  file(INSTALL DESTINATION "${_cpool_pc_dest}" TYPE FILE
       FILES "${_cpool_pc_out}")
]])

# cpool-bench and its man page (issue 14), when the tools are built.
if(TARGET cpool-bench)
  install(TARGETS cpool-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES "${PROJECT_SOURCE_DIR}/tools/bench/cpool-bench.1"
    DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()
