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
