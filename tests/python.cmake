# The Python package (cmake/python.cmake): pytest on NumPy inputs, and on
# PyTorch where it is installed (python/torch is reported skipped otherwise;
# ATTNC_TORCH_PYTHON=/path/to/python runs it with another interpreter).
if(ATTNC_HAVE_PYTHON)
  set(run ${PROJECT_SOURCE_DIR}/python/tests/run.py)
  set(env PYTHONPATH=${ATTNC_PYTHON_DIR} PYTHONDONTWRITEBYTECODE=1)
  add_test(NAME python/numpy COMMAND ${Python3_EXECUTABLE} ${run} numpy)
  add_test(NAME python/torch COMMAND sh -c "exec \"\${ATTNC_TORCH_PYTHON:-${Python3_EXECUTABLE}}\" ${run} torch")
  set_tests_properties(python/numpy python/torch PROPERTIES ENVIRONMENT "${env}" DEPENDS attnc_python)
  set_tests_properties(python/torch PROPERTIES SKIP_RETURN_CODE 77)
endif()
# `pip install ./python` against an installed libattnc (pkg-config), offline
if(ATTNC_HAVE_PYTHON)
  add_test(NAME install/python COMMAND bash ${PROJECT_SOURCE_DIR}/tests/install_python.sh ${CMAKE_BINARY_DIR}
           ${PROJECT_SOURCE_DIR} ${Python3_EXECUTABLE})
  set_tests_properties(install/python PROPERTIES SKIP_RETURN_CODE 77)
endif()
# the examples README's quick start points at
if(ATTNC_HAVE_PYTHON)
  add_test(NAME example/python/quickstart COMMAND ${Python3_EXECUTABLE}
           ${PROJECT_SOURCE_DIR}/examples/python/quickstart.py ${CMAKE_CURRENT_BINARY_DIR}/out-python)
  add_test(NAME example/python/train-tiny COMMAND sh -c
           "exec \"\${ATTNC_TORCH_PYTHON:-${Python3_EXECUTABLE}}\" ${PROJECT_SOURCE_DIR}/examples/python/train_tiny.py")
  set_tests_properties(example/python/quickstart example/python/train-tiny PROPERTIES ENVIRONMENT "${env}")
  set_tests_properties(example/python/train-tiny PROPERTIES SKIP_RETURN_CODE 77)
endif()
