# ---- the Python package (python/; README "Python") -------------------------------
# python/attnc/_attnc.c is a CPython extension written against include/attnc.h
# and linked with libattnc.so; python/attnc/*.py wrap it for NumPy and
# PyTorch.  Built when Python 3's headers are found (Debian: python3-dev).
# Debian's /usr/bin/python3 is preferred: python3-numpy and python3-pytest
# install into it, and a pyenv or venv python3 earlier on PATH would not see
# them (-DPython3_EXECUTABLE=... picks another).  Not under the sanitizers:
# an ASan-instrumented extension cannot load into an uninstrumented python.
if(ATTNC_SANITIZE)
  return()
endif()
if(NOT DEFINED Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python3_EXECUTABLE /usr/bin/python3)
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module)
if(NOT Python3_FOUND)
  message(STATUS "attnc: Python 3 headers not found: no Python package (python3-dev)")
  return()
endif()
set(ATTNC_PYTHON_DIR ${CMAKE_BINARY_DIR}/python)
Python3_add_library(attnc_python MODULE WITH_SOABI python/attnc/_attnc.c)
set_target_properties(attnc_python PROPERTIES OUTPUT_NAME _attnc LIBRARY_OUTPUT_DIRECTORY ${ATTNC_PYTHON_DIR}/attnc)
target_compile_options(attnc_python PRIVATE ${ATTNC_WARNINGS})
target_link_libraries(attnc_python PRIVATE attnc_shared)
# the package's Python files beside the module, so that PYTHONPATH=build/python imports it
file(GLOB ATTNC_PYTHON_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/python/attnc/*.py)
foreach(src ${ATTNC_PYTHON_SOURCES})
  get_filename_component(name ${src} NAME)
  configure_file(${src} ${ATTNC_PYTHON_DIR}/attnc/${name} COPYONLY)
endforeach()
set(ATTNC_HAVE_PYTHON ON)
# cmake --install: the package into PREFIX's Python path (Debian's python3 reads
# /usr/local/lib/python3.X/dist-packages), finding libattnc.so in PREFIX's lib
include(GNUInstallDirs)
set(ATTNC_PYTHON_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/dist-packages"
    CACHE STRING "where cmake --install puts the Python package attnc, relative to the prefix")
# relative, so that the package works wherever the prefix is installed (cmake --install --prefix)
file(RELATIVE_PATH attnc_python_to_lib /prefix/${ATTNC_PYTHON_INSTALL_DIR}/attnc /prefix/${CMAKE_INSTALL_LIBDIR})
set_target_properties(attnc_python PROPERTIES INSTALL_RPATH "$ORIGIN/${attnc_python_to_lib}")
install(TARGETS attnc_python LIBRARY DESTINATION ${ATTNC_PYTHON_INSTALL_DIR}/attnc)
install(FILES ${ATTNC_PYTHON_SOURCES} DESTINATION ${ATTNC_PYTHON_INSTALL_DIR}/attnc)
